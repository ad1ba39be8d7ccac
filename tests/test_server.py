"""The Jupyter server extension against a real `jupyter server` (hand-written): auth on every route, refused
traversal, damaged run folders, a missing runs root, thousands of runs, stop."""
import inspect, json, os, sys, time
from pathlib import Path
import pytest
from tornado import web
sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
from labtest import Jupyter
import lora_nb.server as server
from lora_nb.runs import Run

VERBS = ('get', 'post', 'put', 'patch', 'delete', 'head', 'options')

def verbs(handler) -> list[str]:
    "The HTTP verbs lora_nb's `handler` implements (not Jupyter's CORS `options`)."
    return [v for v in VERBS if getattr(getattr(handler, v), '__module__', None) == server.__name__]

def concrete(route:str, run_id:str='some-run') -> str:
    return route.lstrip('/').replace('([^/]+)', run_id)

def make_run(root, name='run', status='running', steps=5, **info):
    run = Run.create({'model': {'model_id': None, 'quantization': '4bit'}}, name=name, root=root, base_model='embedded tiny base',
                     total_steps=steps, **info)
    run.update(status=status)
    run.log('metrics', *({'step': i, 'loss': 3 - i / steps, 'eta_s': steps - i} for i in range(1, steps + 1)))
    return run

@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    root_dir = tmp_path_factory.mktemp('srv')
    with Jupyter('server', root_dir, env={'LORA_NB_RUNS': ''}) as j: yield j

@pytest.fixture
def runs(srv):
    root = Path(srv.root_dir)/'runs'
    yield root
    import shutil; shutil.rmtree(root, ignore_errors=True)

def test_every_handler_is_routed_and_authenticated():
    "A new handler class must be in ROUTES and every verb it serves must require authentication."
    handlers = {c for _, c in inspect.getmembers(server, inspect.isclass) if issubclass(c, web.RequestHandler) and c.__module__ == server.__name__}
    routed = {h for _, h in server.ROUTES}
    assert handlers - {server.RunsHandler} == routed
    for h in routed:
        assert verbs(h), h
        for v in verbs(h): assert getattr(getattr(h, v), '__wrapped__', None) is not None, f"{h.__name__}.{v} is not @web.authenticated"

def test_403_without_authentication_on_every_route(srv, runs):
    run = make_run(runs)
    for route, h in server.ROUTES:
        for v in verbs(h):
            path = concrete(route, run.id)
            for token in (False, 'wrong-token'):
                code, body = srv.request(v.upper(), path, token=token)
                assert code == 403, (v, path, token, code, body[:200])
            assert srv.request(v.upper(), path)[0] in (200, 409), (v, path)   # and with the token it works

def test_extension_enabled(srv):
    code, body = srv.json('GET', 'api/status'); assert code == 200
    assert 'lora_nb: runs from' in srv.output()

def test_missing_root_then_runs_appear(srv, runs):
    code, page = srv.json('GET', 'lora-nb/runs')
    assert code == 200 and page['exists'] is False and page['runs'] == [] and page['total'] == 0
    assert page['root'] == str(runs.resolve())
    run = make_run(runs)
    page = srv.json('GET', 'lora-nb/runs')[1]
    assert page['exists'] and [r['id'] for r in page['runs']] == [run.id] and [r['id'] for r in page['active']] == [run.id]
    assert page['runs'][0]['step'] == 5 and page['runs'][0]['spark'][-1] == 2.0

def test_new_metrics_line_shows_at_next_poll(srv, runs):
    run = make_run(runs)
    assert srv.json('GET', 'lora-nb/runs')[1]['runs'][0]['step'] == 5
    run.log('metrics', {'step': 6, 'loss': 1.25})
    row = srv.json('GET', 'lora-nb/runs')[1]['runs'][0]
    assert (row['step'], row['loss']) == (6, 1.25)

@pytest.mark.parametrize('bad', ['..', '...', '..%2F..%2Fetc', '%2Fetc%2Fpasswd', '%2E%2E', '.hidden', 'a%00b', 'x' * 300, '~root'])
def test_ids_leaving_the_runs_root_are_refused(srv, runs, bad):
    make_run(runs)
    for v, path in (('GET', f'lora-nb/runs/{bad}'), ('POST', f'lora-nb/runs/{bad}/stop')):
        code, body = srv.json(v, path)
        assert code in (400, 404), (path, code)
        assert body.get('error'), body

def test_symlink_out_of_the_root_is_refused(srv, runs, tmp_path):
    outside = make_run(tmp_path/'elsewhere')
    runs.mkdir(exist_ok=True); (runs/'escape').symlink_to(outside.path)
    code, body = srv.json('GET', 'lora-nb/runs/escape')
    assert code == 400 and 'leaves the runs root' in body['error']
    assert srv.json('POST', 'lora-nb/runs/escape/stop')[0] == 400 and not outside.stop_requested

def test_unknown_run_and_bad_paging(srv, runs):
    make_run(runs)
    code, body = srv.json('GET', 'lora-nb/runs/run-19990101-000000-abcd')
    assert code == 404 and 'No run' in body['error'] and body['hint']
    for q in ('offset=-1', 'limit=0', 'limit=100000', 'offset=abc'):
        code, body = srv.json('GET', f'lora-nb/runs?{q}')
        assert code == 400 and 'must be an integer' in body['error'], q

def test_corrupt_and_partial_files(srv, runs):
    good, bad = make_run(runs, 'good'), make_run(runs, 'bad', status='failed')
    with open(bad.path/'metrics.jsonl', 'a') as f: f.write('{"step": 6, "loss": NaN}\n%%% not json\n{"step": 7, "lo')
    (runs/'torn').mkdir(); (runs/'torn'/'run.json').write_text('{"id": "torn", "sta')
    (bad.path/'samples.jsonl').write_bytes(b'\xff\xfe garbage\n')
    code, page = srv.json('GET', 'lora-nb/runs')          # strict JSON: the NaN is sent as null
    assert code == 200
    rows = {r['id']: r for r in page['runs']}
    assert rows['torn']['status'] == 'corrupt' and rows['torn']['error']
    assert rows[bad.id]['metrics_corrupt_lines'] == 1 and rows[bad.id]['loss'] is None and rows[good.id]['status'] == 'running'
    code, d = srv.json('GET', f'lora-nb/runs/{bad.id}')
    assert code == 200 and d['metrics']['corrupt_lines'] == [7] and d['metrics']['partial'] is True
    assert len(d['metrics']['series']['loss']) == 5
    code, d = srv.json('GET', 'lora-nb/runs/torn')
    assert code == 200 and d['summary']['status'] == 'corrupt' and d['info'] == {}

def test_run_detail(srv, runs):
    run = make_run(runs, steps=2000)
    run.log('samples', {'step': 10, 'prompt': 'p', 'base': 'b', 'adapter': 'a'})
    run.log('votes', {'a': '__base__', 'b': 'run', 'winner': 'run'})
    code, d = srv.json('GET', f'lora-nb/runs/{run.id}')
    assert code == 200 and d['info']['settings']['model']['quantization'] == '4bit'
    m = d['metrics']
    assert m['points'] == 2000 and m['downsampled'] and len(m['series']['loss']) <= 600
    assert d['samples'][0]['adapter'] == 'a' and d['votes']['win_rate'] == 1.0 and d['code'] is None

def test_stop(srv, runs):
    run, done = make_run(runs), make_run(runs, status='completed')
    code, body = srv.json('POST', f'lora-nb/runs/{run.id}/stop')
    assert code == 200 and body['summary']['stop_requested'] and run.stop_requested
    assert [r for r in srv.json('GET', 'lora-nb/runs')[1]['runs'] if r['id'] == run.id][0]['stop_requested']
    code, body = srv.json('POST', f'lora-nb/runs/{done.id}/stop')
    assert code == 409 and 'nothing to stop' in body['error'] and not done.stop_requested
    assert srv.json('GET', f'lora-nb/runs/{run.id}/stop')[0] == 405

def test_template(srv):
    import nbformat
    code, body = srv.json('GET', 'lora-nb/template')
    assert code == 200 and body['name'].endswith('.ipynb')
    nb = nbformat.from_dict(body['content']); nbformat.validate(nb)
    assert 'Studio.quickstart()' in nb.cells[1].source

def test_thousands_of_runs(srv, runs):
    "3000 runs: paged, and a warm poll stays fast (generous bound; bench/ reports the figure)."
    for i in range(3000): make_run(runs, f'r{i}', status='completed' if i % 500 else 'running', steps=20)
    t = time.perf_counter(); code, page = srv.json('GET', 'lora-nb/runs?limit=100'); first = time.perf_counter() - t
    assert code == 200 and page['total'] == 3000 and len(page['runs']) == 100 and len(page['active']) == 6
    t = time.perf_counter(); srv.json('GET', 'lora-nb/runs?offset=2950&limit=100'); warm = time.perf_counter() - t
    last = srv.json('GET', 'lora-nb/runs?offset=2950&limit=100')[1]['runs']
    assert len(last) == 50 and last[-1]['name'] == 'r0'
    assert warm < 2.0, (first, warm)

def test_kernels_get_the_runs_root(srv, runs):
    "A kernel this server starts (whatever its folder) has $LORA_NB_RUNS set to the sidebar's runs root."
    import asyncio, uuid
    from tornado.websocket import websocket_connect
    (Path(srv.root_dir)/'sub').mkdir(exist_ok=True)
    code, k = srv.json('POST', 'api/kernels', {'name': 'python3', 'path': 'sub'})
    assert code == 201, k
    async def run_code(src):
        ws = await websocket_connect(f"ws://127.0.0.1:{srv.port}/api/kernels/{k['id']}/channels?token={srv.token}")
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({'header': {'msg_id': msg_id, 'msg_type': 'execute_request', 'username': 't', 'session': msg_id,
                                                'version': '5.3'}, 'parent_header': {}, 'metadata': {}, 'channel': 'shell',
                                     'content': {'code': src, 'silent': False, 'store_history': False, 'user_expressions': {},
                                                 'allow_stdin': False}}))
        out = ''
        while True:
            m = json.loads(await asyncio.wait_for(ws.read_message(), 60))
            if m['parent_header'].get('msg_id') != msg_id: continue
            if m['msg_type'] == 'stream': out += m['content']['text']
            if m['msg_type'] == 'status' and m['content']['execution_state'] == 'idle': ws.close(); return out
    try:
        out = asyncio.run(run_code("import os; from lora_nb.runs import runs_root; print(os.getcwd()); print(runs_root())"))
        cwd, root = out.split()
        assert cwd.endswith('/sub') and root == str(runs.resolve()), out
    finally:
        srv.request('DELETE', f"api/kernels/{k['id']}")
