"""A real Jupyter server and a real browser for tests and screenshots (hand-written).

`Jupyter(app, root_dir, **options)` starts `jupyter lab` / `server` / `notebook` on loopback with a fresh token and
waits until it answers; `chromium(playwright)` launches Debian's Chromium headless (no browser download). Used by
tests/test_server.py, tests/test_lab_e2e.py and tools/studio_screenshots.py.
"""
import json, os, secrets, shutil, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request
from pathlib import Path

CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def chromium_path() -> str|None:
    return shutil.which('chromium') or shutil.which('chromium-browser')

def chromium(playwright):
    "Debian's Chromium, headless, with a fresh profile."
    exe = chromium_path()
    if exe is None: raise RuntimeError("Chromium not found: `apt-get install -y chromium` (Debian's package).")
    return playwright.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)

def lab_env(work:Path) -> dict:
    "Environment for a JupyterLab keeping its settings and workspaces in `work` (no news, no update checks)."
    settings = work/'.settings'/'@jupyterlab'/'apputils-extension'
    settings.mkdir(parents=True, exist_ok=True)
    (settings/'notification.jupyterlab-settings').write_text('{"fetchNews": "false", "checkForUpdates": false}')
    return {'JUPYTERLAB_SETTINGS_DIR': str(work/'.settings'), 'JUPYTERLAB_WORKSPACES_DIR': str(work/'.workspaces'),
            'LORA_NB_RUNS': ''}

def notebook(cells:list[str]) -> dict:
    "An nbformat-4 notebook of code cells."
    return {'nbformat': 4, 'nbformat_minor': 5,
            'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}},
            'cells': [{'cell_type': 'code', 'id': f'c{i}', 'metadata': {}, 'source': c, 'outputs': [],
                       'execution_count': None}
                      for i, c in enumerate(cells)]}

class Jupyter:
    "`jupyter <app>` of `python` on 127.0.0.1 with a token, in `root_dir`; `Name__trait=value` options: `--Name.trait`."
    def __init__(self, app:str='lab', root_dir=None, env:dict|None=None, python:str=sys.executable, **options):
        self.app, self.root_dir = app, Path(root_dir or tempfile.mkdtemp())
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f'http://127.0.0.1:{self.port}'
        flags = [f'--{k.replace("__", ".")}={v}' for k, v in options.items()]
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.root_dir/'.jupyter.log', 'w+')
        self.proc = subprocess.Popen([python, '-m', 'jupyter', app, '--no-browser', '--allow-root',
                                      f'--port={self.port}',
                                      '--ip=127.0.0.1', f'--IdentityProvider.token={self.token}',
                                      f'--ServerApp.root_dir={self.root_dir}', *flags],
                                     stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try: self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout:float=120):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None: raise RuntimeError(f"jupyter {self.app} exited: {self.output()[-3000:]}")
            try:
                if self.request('GET', 'api/status')[0] == 200: return
            except (urllib.error.URLError, ConnectionError): pass
            time.sleep(0.3)
        raise TimeoutError(f"jupyter {self.app} did not answer in {timeout} s: {self.output()[-3000:]}")

    def request(self, method:str, path:str, body=None, token:bool|str=True) -> tuple[int, bytes]:
        "HTTP `method` on `path` (relative to the base URL); `token=False` sends no credentials."
        headers = {'Authorization': f'token {self.token if token is True else token}'} if token else {}
        data = None if body is None else json.dumps(body).encode()
        if method in ('POST', 'PUT', 'PATCH') and data is None: data = b''
        req = urllib.request.Request(f'{self.url}/{path}', data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r: return r.status, r.read()
        except urllib.error.HTTPError as e: return e.code, e.read()

    def json(self, method:str, path:str, body=None, token:bool|str=True) -> tuple[int, dict]:
        code, raw = self.request(method, path, body, token)
        def refuse(c): raise ValueError(f"non-JSON constant {c}")
        try: return code, json.loads(raw, parse_constant=refuse)
        except ValueError as e: raise AssertionError(f"{method} {path} -> {code}, not strict JSON: {raw[:300]!r} ({e})")

    def output(self) -> str:
        "What the server printed so far."
        if not self.log.closed: self.log.flush()
        return (self.root_dir/'.jupyter.log').read_text(errors='replace')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try: self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self): return self
    def __exit__(self, *exc): self.stop()
