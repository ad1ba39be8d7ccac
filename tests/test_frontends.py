"""The Studio wherever notebooks run (hand-written): one scenario in each frontend, in Debian's Chromium.

Frontends: JupyterLab 4 (this environment: ipywidgets 8, ipykernel 7) with the anywidget frontend disabled, in the
light then the dark theme; Notebook 7; the classic Notebook 6.5 with ipywidgets 7.7 and ipykernel 6 (what Colab
ships: the stand-in for its widget stack). Notebook 7 and the classic Notebook run in environments the test builds
under `.frontends/` (git-ignored; a venv over this one with only the frontend's packages on top, rebuilt only when
their list changes). In each: the Studio renders, trains with a plot that updates while it trains, compares, blind
votes are cast; the notebook is saved and its nbconvert HTML shows the run's summary with the loss curve, the
comparison and the votes. The classic Notebook has no network: plotly.js comes from the nbextension the wheel
installs, the CDN is blocked. With widgetsnbextension 3.6.10 (what `pip install "ipywidgets==7.7.1"`, Colab's version,
brings) the classic Notebook draws no Studio: the summary says so, with the fix. In JupyterLab also: text readable in
both themes, no truncated buttons and no horizontal scrollbars at 1024 and 1440 px. Screenshots go to
$LORA_NB_E2E_OUT (default tests/artifacts/frontends).
"""
import hashlib, json, os, re, secrets, shutil, subprocess, sys, sysconfig, time
from pathlib import Path
import pytest
sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
from hatch_build import NBEXT, plotly_js
from labtest import Jupyter, chromium, chromium_path, free_port, lab_env, notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get('LORA_NB_E2E_OUT', ROOT/'tests'/'artifacts'/'frontends'))
ENVS = ROOT/'.frontends'
SPECS = {'notebook7': ['notebook>=7.2,<8'],
         'classic': ['notebook==6.5.7', 'ipywidgets==7.7.1', 'widgetsnbextension==3.6.1', 'ipykernel==6.29.5'],
         # Colab's ipywidgets with the widgetsnbextension pip picks for it today: no Output widget in the classic page
         'classic-wnb3610': ['notebook==6.5.7', 'ipywidgets==7.7.1', 'widgetsnbextension==3.6.10', 'ipykernel==6.29.5']}
STUDIO = ("from lora_nb.panels.studio_view import Studio\ns = Studio.quickstart(root='runs')\n"
          "s.state.train.train.update(max_steps=12, save_steps=12)\ns.train.fields['train.max_steps'].refresh()\ns")
PROMPTS = 'Name the type of 3.5\nReverse the word if.'

def frontend_env(name:str) -> Path:
    "The python of a venv over this one with `SPECS[name]` installed on top (built once, kept under .frontends/)."
    d, specs = ENVS/name, SPECS[name]
    key = hashlib.sha256(json.dumps([sys.executable, specs]).encode()).hexdigest()
    py = d/'bin'/'python'
    if (d/'.built').exists() and (d/'.built').read_text() == key: return py
    shutil.rmtree(d, ignore_errors=True)
    subprocess.run([sys.executable, '-m', 'venv', str(d)], check=True)
    purelib = Path(subprocess.run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # after the venv's own packages: this environment's (torch, transformers, ...), their .pth files processed too
    (purelib/'_over.pth').write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    r = subprocess.run([str(py), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', *specs],
                       capture_output=True, text=True)
    if r.returncode: pytest.fail(f"could not build the {name} environment ({' '.join(specs)}):\n{r.stderr[-3000:]}")
    for sub in ('schemas', 'themes'):                # JupyterLab's own settings schemas and themes, beside its own
        mine, ours = d/'share'/'jupyter'/'lab'/sub, Path(sys.prefix)/'share'/'jupyter'/'lab'/sub
        if ours.exists() and not mine.exists(): mine.parent.mkdir(parents=True, exist_ok=True)
        if ours.exists() and not mine.exists(): mine.symlink_to(ours)
        elif ours.exists():
            for item in ours.iterdir():
                if not (mine/item.name).exists(): (mine/item.name).symlink_to(item)
    (d/'.built').write_text(key)
    return py

class Classic(Jupyter):
    "The classic Notebook 6 server (its own options: `NotebookApp.token`, `--notebook-dir`)."
    def __init__(self, root_dir:Path, env:dict, python:str):
        self.app, self.root_dir = 'notebook', Path(root_dir)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f'http://127.0.0.1:{self.port}'
        self.log = open(self.root_dir/'.jupyter.log', 'w+')
        self.proc = subprocess.Popen([python, '-m', 'jupyter', 'notebook', '--no-browser', '--allow-root',
                                      f'--port={self.port}', '--ip=127.0.0.1', f'--NotebookApp.token={self.token}',
                                      f'--notebook-dir={self.root_dir}'],
                                     stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env})
        try: self.wait_ready()
        except BaseException:
            self.stop()
            raise

class Page:
    "What differs between frontends: where outputs are, how to run and save, where tabs are."
    def __init__(self, page, kind:str, j):
        self.page, self.kind, self.j = page, kind, j
        self.out = '.output_area' if kind == 'classic' else '.jp-OutputArea'

    def open_and_run(self, name:str):
        p, j = self.page, self.j
        url = f'{j.url}/lab/tree/{name}' if self.kind == 'lab' else f'{j.url}/notebooks/{name}'
        p.goto(f'{url}?token={j.token}')
        if self.kind == 'classic':
            p.wait_for_function("() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel"
                                " && Jupyter.notebook.kernel.is_connected()", timeout=120_000)
            time.sleep(4)                           # the widget manager reads the kernel's widgets (or drops views)
            p.evaluate("() => Jupyter.notebook.execute_all_cells()")
            return
        p.locator('.jp-Notebook .jp-Cell').first.wait_for(timeout=120_000)
        time.sleep(4)                                   # the kernel starts
        p.click('.lm-MenuBar-itemLabel:text-is("Run")', timeout=30_000)
        p.click('.lm-Menu-itemLabel:text-is("Run All Cells")', timeout=30_000)

    def save(self):
        if self.kind == 'classic': self.page.evaluate("() => Jupyter.notebook.save_notebook()")
        else:
            self.page.locator('.jp-Notebook .jp-Cell').first.click(position={'x': 2, 'y': 2})
            self.page.keyboard.press('Control+s')

    def button(self, text:str):
        return self.page.locator(f'{self.out} button.widget-button:visible:has-text("{text}")').first

    def tab(self, title:str):
        self.page.locator(f'{self.out} .widget-tab :is(.lm-TabBar-tab, .p-TabBar-tab):visible:has-text("{title}")'
                          ).first.click()

    def wait_text(self, text:str, timeout:float=180_000):
        self.page.wait_for_function(
            "([o, t]) => [...document.querySelectorAll(o + ' .widget-html')]"
            ".some(e => e.offsetParent !== null && e.textContent.includes(t))", arg=[self.out, text], timeout=timeout)

    def points(self) -> int:
        "Markers of the loss trace in the shown plot."
        return self.page.evaluate(
            "o => Math.max(0, ...[...document.querySelectorAll(o + ' .js-plotly-plot')].filter(p => p.offsetParent)"
            ".map(p => p.querySelectorAll('.scatterlayer .trace:first-child .points path').length))", self.out)

    def shot(self, name:str): self.page.screenshot(path=str(OUT/f'{self.kind}-{name}.png'))

CDN_PLOTLY = Path(__import__('plotly').__file__).parent/'package_data'/'plotly.min.js'

def serve_cdn(page):
    "cdn.plot.ly as the browser would reach it with a network (the plot's HTML fallback loads plotly.js from it)."
    page.route('https://cdn.plot.ly/**', lambda route: route.fulfill(path=str(CDN_PLOTLY),
                                                                     content_type='application/javascript'))

def block_cdn(page) -> list:
    "No network: requests to CDNs fail (as in a workshop); the list of what was asked for."
    asked = []
    def abort(route):
        asked.append(route.request.url)
        route.abort()
    page.route(re.compile(r'^https?://(?!127\.0\.0\.1[:/])'), abort)   # matched in the browser: nothing waits on Python
    return asked

def classic_env(work:Path) -> dict:
    "The kernel's environment, and the wheel's nbextension (plotly.js) where the classic Notebook looks for it."
    dest = ENVS/'jupyter'/NBEXT.removeprefix('share/jupyter/')/'plotly.min.js'
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists() or dest.stat().st_size != plotly_js().stat().st_size:   # a copy: the server serves no link
        shutil.copyfile(plotly_js(), dest)                                       # out of its folder
    return {**kernel_env(work), 'JUPYTER_PATH': str(ENVS/'jupyter')}

def scenario(pg:Page, work:Path):
    "Studio → Start (the plot grows while it trains) → Compare → blind votes → save → nbconvert HTML shows it all."
    try: _scenario(pg, work)
    except BaseException:
        pg.page.screenshot(path=str(OUT/f'{pg.kind}-failed.png'), full_page=True)
        raise

def _scenario(pg:Page, work:Path):
    page = pg.page
    pg.open_and_run('studio.ipynb')
    page.wait_for_function("o => [...document.querySelectorAll(o + ' button.widget-button')]"
                           ".some(b => b.textContent.includes('Start') && !b.disabled)", arg=pg.out, timeout=240_000)
    pg.shot('a-studio')
    pg.button('Start').click()
    t0, seen = time.time(), []
    while time.time() - t0 < 240 and not (seen and seen[-1] >= 12):
        n = pg.points()
        if not seen or n != seen[-1]: seen.append(n)
        time.sleep(0.2)
    assert len([n for n in seen if 0 < n < 12]) >= 1 and seen[-1] >= 12, f"the plot did not grow live: {seen}"
    pg.wait_text('Training completed')
    pg.shot('b-trained')
    stderr = '.output_stderr' if pg.kind == 'classic' else '[data-mime-type="application/vnd.jupyter.stderr"]'
    assert page.locator(stderr).count() == 0, page.locator(stderr).all_inner_texts()   # quiet imports and training
    pg.tab('Compare')
    page.locator(f'{pg.out} .widget-textarea textarea:visible').first.fill(PROMPTS)
    pg.button('Compare').click()
    page.wait_for_selector(f'{pg.out} table:visible th:has-text("run (")', timeout=180_000)
    pg.shot('c-compare')
    pg.button('Blind test').click()
    pg.button('Both bad').wait_for(timeout=30_000)
    pg.button('Tie').click()
    pg.wait_text('1 of 2 voted')
    pg.button('Right is better').click()
    pg.wait_text('All 2 prompts voted')
    pg.shot('d-voted')
    assert not page.locator(f'{pg.out} .lnb-watch p').count()       # the Studio drew: no word of widgets failing
    run_id = next(p.name for p in (work/'runs').iterdir() if (p/'run.json').exists())
    saved = work/'studio.ipynb'
    t0 = time.time()
    while time.time() - t0 < 60:                    # the summary under the Studio reached the page, then the file
        pg.save()
        time.sleep(2)
        text = saved.read_text()
        if 'All 2 prompts voted' in text or ('2 of 2 voted' in text and 'lnb-curve' in text): break
    assert 'lnb-curve' in text and run_id in text and '2 of 2 voted' in text, text[-3000:]
    report = (work/'runs'/run_id/'report.html').read_text()                # the run's own report, written too
    assert 'lnb-curve' in report and '2 of 2 voted' in report
    html = work/f'{pg.kind}.html'
    subprocess.run([sys.executable, '-m', 'jupyter', 'nbconvert', '--to', 'html', str(saved),
                    f'--output={html.stem}', f'--output-dir={work}'], check=True, capture_output=True)
    page.goto(html.as_uri())
    summary = page.locator('.lnb-summary')
    assert summary.count() == 1 and summary.is_visible()
    assert summary.locator('svg.lnb-curve circle').count() >= 12           # the final curve, every step
    body = summary.inner_text()
    assert run_id in body and 'completed' in body and 'Comparison' in body and '2 of 2 voted' in body, body
    assert 'run (' in summary.locator('table').nth(1).inner_text()          # the comparison's columns
    summary.screenshot(path=str(OUT/f'{pg.kind}-e-nbconvert.png'))

# the colours of text against the background it is drawn on (the first opaque one up the tree), WCAG's ratio
CONTRAST = """o => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = c => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
                               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = e => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
                      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); }
                    return [255, 255, 255]; };
  const bad = [];
  for (const e of document.querySelectorAll(o + ' .lnb-studio *')) {
    if (!e.offsetParent || ![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const a = lum(rgb(getComputedStyle(e).color)), b = lum(bg(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 3) bad.push(`${e.tagName} "${e.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return bad;
}"""

OVERFLOW = """o => {
  const bad = [];
  for (const e of document.querySelectorAll(o + ' .lnb-studio, ' + o + ' .lnb-studio *')) {
    if (!e.offsetParent) continue;
    const s = getComputedStyle(e);
    if (e.matches('button') && e.scrollWidth > e.clientWidth + 1) bad.push(`clipped button "${e.textContent}"`);
    if (['auto', 'scroll'].includes(s.overflowX) && e.scrollWidth > e.clientWidth + 1 && !e.matches('textarea'))
      bad.push(`scrollbar on ${e.className} (${e.scrollWidth} > ${e.clientWidth})`);
  }
  return bad;
}"""

def check_layout(pg:Page, theme:str):
    "Every tab: readable text; at 1024 and 1440 px no clipped button and no horizontal scrollbar."
    problems = []
    for width in (1024, 1440):
        pg.page.set_viewport_size({'width': width, 'height': 1000})
        for t in ('Model', 'Data', 'Train', 'Compare', 'Chat', 'Adapters', 'Evaluate', 'Export', 'Code'):
            pg.tab(t)
            time.sleep(0.5)
            problems += [f'{theme} {width}px {t}: {p}' for p in pg.page.evaluate(CONTRAST, pg.out)]
            problems += [f'{theme} {width}px {t}: {p}' for p in pg.page.evaluate(OVERFLOW, pg.out)]
            if width == 1024 and t in ('Train', 'Compare', 'Adapters'): pg.shot(f'{theme}-{width}-{t.lower()}')
    assert not problems, '\n'.join(problems)

def theme(pg:Page, name:str):
    pg.page.click('.lm-MenuBar-itemLabel:text-is("Settings")')
    pg.page.click('.lm-Menu-itemLabel:text-is("Theme")')
    pg.page.click(f'.lm-Menu-itemLabel:text-is("{name}")')
    time.sleep(2)

@pytest.fixture(scope='module')
def browser():
    if chromium_path() is None: pytest.fail("Chromium is missing: `apt-get install -y chromium` (.ci/run does it).")
    from playwright.sync_api import sync_playwright
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = chromium(p)
        yield b
        b.close()

def workdir(tmp_path:Path) -> Path:
    (tmp_path/'studio.ipynb').write_text(json.dumps(notebook([STUDIO])))
    return tmp_path

def kernel_env(work:Path) -> dict:
    return {**lab_env(work), 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])}

def test_jupyterlab_light_and_dark_without_anywidget(browser, tmp_path):
    work = workdir(tmp_path)
    cfg = work/'.config'/'labconfig'
    cfg.mkdir(parents=True)
    (cfg/'page_config.json').write_text(json.dumps({'disabledExtensions': {'anywidget': True}}))
    env = {**kernel_env(work), 'JUPYTER_CONFIG_DIR': str(work/'.config')}
    with Jupyter('lab', work, env=env) as j:
        page = browser.new_page(viewport={'width': 1280, 'height': 1000})
        serve_cdn(page)
        pg = Page(page, 'lab', j)
        scenario(pg, work)
        pg.page.goto(f'{j.url}/lab/tree/studio.ipynb?token={j.token}')      # the Studio, live again
        page.wait_for_selector('.jp-OutputArea .lnb-studio', timeout=60_000)
        off = page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
                            ".disabledExtensions")
        assert 'anywidget' in json.dumps(off), off                            # no anywidget frontend in this page
        assert not page.locator('.jp-OutputArea .lnb-summary:visible').count()   # hidden where widgets render
        check_layout(pg, 'light')
        theme(pg, 'JupyterLab Dark')
        check_layout(pg, 'dark')
        page.close()

def jupyter_path() -> str:
    "This environment's labextensions (widgets, plotly, lora-nb), the tree's own lora-nb build first when there is one."
    paths, built = [str(Path(sys.prefix)/'share'/'jupyter')], ROOT/'lora_nb'/'labextension'
    if (built/'package.json').exists():
        link = ENVS/'jupyter'/'labextensions'/'lora-nb'
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists(): link.unlink()
        link.symlink_to(built)
        paths.insert(0, str(ENVS/'jupyter'))
    return os.pathsep.join(paths)

def test_notebook7(browser, tmp_path):
    py = frontend_env('notebook7')
    work = workdir(tmp_path)
    env = {**kernel_env(work), 'JUPYTER_PATH': jupyter_path(),   # and this environment's server extensions
           'JUPYTER_CONFIG_PATH': str(Path(sys.prefix)/'etc'/'jupyter')}
    with Jupyter('notebook', work, env=env, python=str(py), JupyterNotebookApp__expose_app_in_browser=True) as j:
        page = browser.new_page(viewport={'width': 1280, 'height': 1000})
        serve_cdn(page)
        pg = Page(page, 'notebook7', j)
        scenario(pg, work)
        run_id = next(p.name for p in (work/'runs').iterdir() if (p/'run.json').exists())
        viewer = open_viewer_in_notebook7(page, j, run_id)                   # the runs panel's Open shows the run
        assert page.locator('.jp-NotebookPanel:visible').count() == 1        # below the notebook, which stays
        assert viewer.bounding_box()['height'] > 300, viewer.bounding_box()  # not a bottom strip of 35 px
        pg.shot('f-viewer')
        theme(pg, 'JupyterLab Dark')
        pg.tab('Train')
        pg.shot('g-dark-train')
        page.close()

def test_classic_notebook_with_ipywidgets_7(browser, tmp_path):
    py = frontend_env('classic')
    versions = subprocess.run([str(py), '-c', 'import ipywidgets, ipykernel; print(ipywidgets.__version__, '
                               'ipykernel.__version__)'], capture_output=True, text=True, check=True).stdout.split()
    assert versions[0].startswith('7.7') and versions[1].startswith('6.'), versions
    work = workdir(tmp_path)
    with Classic(work, classic_env(work), str(py)) as j:
        page = browser.new_page(viewport={'width': 1280, 'height': 1000})
        asked = block_cdn(page)                     # plotly.js for the plot's HTML: the nbextension's, offline
        scenario(Page(page, 'classic', j), work)
        assert not [u for u in asked if 'plot' in u], asked
        page.close()

def test_classic_notebook_says_when_its_widget_manager_fails(browser, tmp_path):
    "widgetsnbextension 3.6.10 makes no Output widget: no Studio draws, and the summary says so and what to install."
    py, work = frontend_env('classic-wnb3610'), workdir(tmp_path)
    with Classic(work, classic_env(work), str(py)) as j:
        page = browser.new_page(viewport={'width': 1280, 'height': 1000})
        block_cdn(page)
        errors = []
        page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
        Page(page, 'classic', j).open_and_run('studio.ipynb')
        note = page.locator('.output_area .lnb-watch p')
        note.wait_for(state='visible', timeout=240_000)
        page.screenshot(path=str(OUT/'classic-wnb3610-note.png'))
        assert any('_deserialize_state' in e for e in errors), errors[:5]           # the upstream fault, still there
        assert not page.locator('.output_area .lnb-studio').count()                 # nothing drew ...
        assert page.locator('.output_area .lnb-summary').is_visible()               # ... but the summary shows
        text = note.inner_text()
        assert 'did not draw' in text and 'pip install "ipywidgets==7.7.1" "widgetsnbextension==3.6.1"' in text, text
        page.close()

def short_run(work:Path) -> str:
    "A real two-step run of the embedded model under work/runs; its id."
    from lora_nb.data import prepare
    from lora_nb.models import load_model
    from lora_nb.settings import Pasted
    from lora_nb.train import LoraSettings, Session, TrainSettings
    lm = load_model(quantization='none')
    text = '\n'.join(json.dumps({'instruction': f'Reverse {w}.', 'output': w[::-1]}) for w in ['loop', 'if', 'for'] * 3)
    s = Session(lm, prepare(Pasted(text), lm.tokenizer, eval_size=0), LoraSettings(r=4),
                TrainSettings(max_steps=2, logging_steps=1, save_steps=100), root=work/'runs').start()
    assert s.wait(120) == 'completed'
    return s.run.id

def open_viewer_in_notebook7(page, j, run_id:str):
    "Open the studio notebook in Notebook 7, then run `run_id`'s viewer from the runs panel; the viewer's locator."
    page.goto(f'{j.url}/notebooks/studio.ipynb?token={j.token}')
    page.wait_for_function("() => window.jupyterapp && jupyterapp.commands.hasCommand('lora-nb:open-runs')",
                           timeout=120_000)
    page.evaluate("() => jupyterapp.commands.execute('lora-nb:open-runs')")
    page.locator(f'.jp-LoraNb-run[data-run-id="{run_id}"] .jp-LoraNb-open').click(timeout=60_000)
    viewer = page.locator(f'[id="lora-nb-run-{run_id}"]')
    viewer.wait_for(state='visible', timeout=30_000)
    return viewer

def test_notebook7_opens_a_run_viewer_tall_enough_to_read(browser, tmp_path):
    "Notebook 7 keeps its notebook in the main area: the viewer goes below it, given half the height (not 35 px)."
    py, work = frontend_env('notebook7'), workdir(tmp_path)
    run_id = short_run(work)
    env = {**kernel_env(work), 'JUPYTER_PATH': jupyter_path(),
           'JUPYTER_CONFIG_PATH': str(Path(sys.prefix)/'etc'/'jupyter')}
    with Jupyter('notebook', work, env=env, python=str(py), JupyterNotebookApp__expose_app_in_browser=True) as j:
        page = browser.new_page(viewport={'width': 1280, 'height': 1000})
        viewer = open_viewer_in_notebook7(page, j, run_id)
        page.wait_for_timeout(1000)
        box = viewer.bounding_box()
        page.screenshot(path=str(OUT/'notebook7-viewer.png'))
        assert box['height'] > 300 and page.locator('.jp-NotebookPanel:visible').count() == 1, box
        assert viewer.locator('svg').count() > 0                              # its loss chart is there to see
        page.close()
