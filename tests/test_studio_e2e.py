"""The Studio in a real browser (hand-written): JupyterLab 4 on loopback, Debian's Chromium driven by Playwright.

(a) Start, Stop, then Resume in one click (nothing typed, loaded or prepared again), and a page reload that draws the
plot again from the kernel; (b) Compare, then the blind view (no names in sight) whose votes on the Studio's own
adapter reach its run and the run viewer's data; (c) Chat: a streamed reply, rated; (d) the Code tab after an Upload;
(e) a new kernel picks the stopped run up (model, data, settings, the curve) and Resume finishes it.
Screenshots, light and dark, go to $LORA_NB_E2E_OUT (default tests/artifacts/e2e).
"""
import json, os, sys, time
from pathlib import Path
import pytest
sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
from labtest import Jupyter, chromium, chromium_path, lab_env, notebook
from lora_nb.runs import Run

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get('LORA_NB_E2E_OUT', ROOT/'tests'/'artifacts'/'e2e'))
STUDIO = ("from lora_nb.panels.studio_view import Studio\ns = Studio.quickstart(root='runs')\n"
          "s.state.train.train.update(max_steps=16, save_steps=4)\ns.train.fields['train.max_steps'].refresh()\ns")
PICKUP = "from lora_nb.panels.studio_view import Studio\nStudio(root='runs')"
MARKUP = '<img src=x onerror="window.__lnb_xss=1"><script>window.__lnb_xss=2</script>'
PLOT_HAS_POINTS = ("() => [...document.querySelectorAll('.jp-OutputArea .js-plotly-plot')]"   # shown ones only
                   ".filter(p => p.offsetParent !== null).flatMap(p => [...p.querySelectorAll('.scatterlayer .trace')])"
                   ".some(t => t.querySelectorAll('.points path').length > 2)")

def button(page, text:str): return page.locator(f'.jp-OutputArea button.widget-button:visible:has-text("{text}")')

def tab(page, title:str): page.locator(f'.jp-OutputArea .lm-TabBar-tab:visible:has-text("{title}")').first.click()

def wait_text(page, text:str, timeout:float=120_000):
    page.wait_for_function("t => [...document.querySelectorAll('.jp-OutputArea .widget-html:not([hidden])')]"
                           ".some(e => e.offsetParent !== null && e.textContent.includes(t))", arg=text,
                           timeout=timeout)

def the_run(runs:Path) -> Run:
    found = sorted(p for p in runs.glob('*') if (p/'run.json').exists())
    assert found, f"no run under {runs}"
    return Run(found[-1])

def steps(run:Run) -> list[int]: return [r['step'] for r in run.read('metrics').records if 'loss' in r]

def open_and_run(page, j, name:str):
    page.goto(f'{j.url}/lab/tree/{name}?token={j.token}')
    page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell:visible').first.wait_for(timeout=120_000)
    time.sleep(3)                                   # the kernel starts
    page.click('.lm-MenuBar-itemLabel:text-is("Run")', timeout=30_000)
    page.click('.lm-Menu-itemLabel:text-is("Run All Cells")', timeout=30_000)

def shot(page, name:str): page.screenshot(path=str(OUT/f'studio-{name}.png'))

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    if chromium_path() is None: pytest.fail("Chromium is missing: `apt-get install -y chromium` (.ci/run does it).")
    from playwright.sync_api import sync_playwright
    work = tmp_path_factory.mktemp('studio')
    nb = work/'nb'
    nb.mkdir()
    (nb/'studio.ipynb').write_text(json.dumps(notebook([STUDIO])))
    (nb/'second.ipynb').write_text(json.dumps(notebook([STUDIO])))
    (nb/'pickup.ipynb').write_text(json.dumps(notebook([PICKUP])))
    (nb/'upload.jsonl').write_text(''.join(json.dumps({'instruction': f'Say {w}.', 'output': w}) + '\n'
                                           for w in ('yes', 'no', 'maybe', 'never', 'always', 'soon')))
    env = lab_env(work)
    OUT.mkdir(parents=True, exist_ok=True)
    with Jupyter('lab', nb, env=env) as j, sync_playwright() as p:
        browser = chromium(p)
        page = browser.new_page(viewport={'width': 1440, 'height': 1000})
        yield dict(j=j, page=page, runs=nb/'runs', nb=nb)
        browser.close()

def test_a_stop_resume_and_reload(lab):
    page, j = lab['page'], lab['j']
    open_and_run(page, j, 'studio.ipynb')
    page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea button.widget-button')]"
                           ".some(b => b.textContent.includes('Start') && !b.disabled)", timeout=180_000)
    button(page, 'Start').first.click()
    page.wait_for_function(PLOT_HAS_POINTS, timeout=120_000)
    button(page, 'Stop').first.click()
    wait_text(page, 'Training stopped')
    run = the_run(lab['runs'])
    stopped_at = steps(run)[-1]
    assert Run(run.path).info()['status'] == 'stopped' and stopped_at < 16
    shot(page, 'a-stopped')
    button(page, 'Resume').first.click()            # nothing typed: this Studio's run is the one offered
    t0 = time.time()
    while time.time() - t0 < 120 and (steps(run)[-1] if steps(run) else 0) <= stopped_at + 2: time.sleep(0.2)
    page.keyboard.press('Control+s')                 # saved (as autosave does), so the page knows the Studio's output
    time.sleep(2)
    page.reload()                                   # the browser reloads; the kernel keeps the Studio
    page.wait_for_selector('.jp-NotebookPanel .jp-Notebook .jp-Cell', timeout=120_000)
    page.wait_for_function(PLOT_HAS_POINTS, timeout=120_000)   # drawn again from the kernel's state
    wait_text(page, 'Training completed', timeout=240_000)
    shot(page, 'a-resumed-after-reload')
    info = run.info()
    assert info['status'] == 'completed' and info.get('resumed_from'), info
    assert steps(run)[-1] == 16 and set(range(1, 17)) <= set(steps(run))

def test_b_compare_blind_votes_reach_the_run(lab):
    page = lab['page']
    tab(page, 'Compare')
    page.locator('.jp-OutputArea textarea:visible').first.fill(f'Name the type of 3.5\n{MARKUP}')   # markup: text
    button(page, 'Compare').first.click()
    wait_text(page, 'base', timeout=180_000)
    page.wait_for_selector('.jp-OutputArea table:visible th:has-text("run (")', timeout=180_000)
    shot(page, 'b-compare')
    button(page, 'Blind test').first.click()
    page.wait_for_selector('.jp-OutputArea button.widget-button:visible:has-text("Both bad")', timeout=30_000)
    assert not page.locator('.jp-OutputArea table:visible th:has-text("run (")').count()   # no names in sight
    shot(page, 'b-blind')
    button(page, 'Tie').first.click()
    button(page, 'Right is better').first.click()
    wait_text(page, 'All 2 prompts voted')
    shot(page, 'b-blind-revealed')
    assert page.evaluate('window.__lnb_xss') is None and 'onerror=' in page.inner_text('.jp-OutputArea')
    votes = the_run(lab['runs']).read('votes').records
    assert [v['winner'] != '' for v in votes] == [True, True] and votes[0]['winner'] == 'tie', votes
    code, detail = lab['j'].json('GET', f"lora-nb/runs/{the_run(lab['runs']).id}")
    assert code == 200 and detail['votes']['n'] == 2, detail.get('votes')   # what the run viewer shows

def test_c_chat_streams_and_a_rating_reaches_the_run(lab):
    page = lab['page']
    tab(page, 'Chat')
    page.locator('.jp-OutputArea textarea[placeholder="Your message"]:visible').fill('Name the type of 42')
    button(page, 'Send').first.click()
    page.wait_for_selector('.jp-OutputArea button.widget-button:visible:has-text("Good")', timeout=120_000)
    shot(page, 'c-chat')
    button(page, 'Good').first.click()
    wait_text(page, 'Saved with the run')
    chats = the_run(lab['runs']).read('chats').records
    assert len(chats) == 1 and chats[0]['rating'] == 'up'
    assert chats[0]['prompt'][-1]['content'] == 'Name the type of 42'

def test_d_code_tab_after_an_upload(lab):
    page = lab['page']
    tab(page, 'Data')
    page.locator('.jp-OutputArea .widget-toggle-button:visible:has-text("upload")').first.click()
    with page.expect_file_chooser() as chooser:      # the upload button makes its file input when clicked
        page.locator('.jp-OutputArea button.widget-upload:visible').first.click()
    chooser.value.set_files(str(lab['nb']/'upload.jsonl'))
    button(page, 'Prepare').first.click()
    wait_text(page, 'training and')
    tab(page, 'Code')
    button(page, 'Write the code').first.click()
    page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea textarea')]"
                           ".some(t => t.value.includes('Session('))", timeout=30_000)
    code = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea textarea')]"
                         ".map(t => t.value).join('\\n')")
    assert 'studio-data' in code and 'does not exist' not in code and 'Pasted(' not in code, code[:2000]
    shot(page, 'd-code')

def banners(page) -> str:
    "The text of every banner shown, for failure messages."
    return page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea .widget-html')]"
                         ".filter(e => e.offsetParent !== null && e.querySelector('div[style*=\"padding:6px 10px\"]'))"
                         ".map(e => e.textContent).join(' | ')")

def test_e_a_new_kernel_picks_the_run_up_and_resumes(lab):
    page, j = lab['page'], lab['j']
    n = len(list(lab['runs'].glob('run-*')))
    open_and_run(page, j, 'second.ipynb')            # a Studio in its own kernel trains, and is stopped
    page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea button.widget-button')]"
                           ".some(b => b.textContent.includes('Start') && !b.disabled)", timeout=180_000)
    button(page, 'Start').first.click()
    t0 = time.time()
    while len(list(lab['runs'].glob('run-*'))) == n and time.time() - t0 < 60: time.sleep(0.2)
    runs = sorted(lab['runs'].glob('run-*'), key=lambda p: p.stat().st_mtime)
    assert len(runs) == n + 1, banners(page)
    run = Run(runs[-1])
    while not [s for s in steps(run) if s >= 2] and time.time() - t0 < 120: time.sleep(0.2)
    button(page, 'Stop').first.click()
    wait_text(page, 'Training stopped')
    assert run.info()['status'] == 'stopped'
    open_and_run(page, j, 'pickup.ipynb')            # another kernel: nothing loaded
    button(page, 'Pick up').first.wait_for(timeout=180_000)
    button(page, 'Pick up').first.click()
    wait_text(page, 'Picked up', timeout=180_000)
    page.wait_for_function(PLOT_HAS_POINTS, timeout=60_000)   # the run's curve is back
    shot(page, 'e-picked-up')
    button(page, 'Resume').first.click()
    wait_text(page, 'Training completed', timeout=240_000)
    assert run.info()['status'] == 'completed' and steps(run)[-1] == 16

def test_f_dark_theme(lab):
    page = lab['page']
    page.click('.lm-MenuBar-itemLabel:text-is("Settings")')
    page.click('.lm-Menu-itemLabel:text-is("Theme")')
    page.click('.lm-Menu-itemLabel:text-is("JupyterLab Dark")')
    time.sleep(2)
    for t in ('Train', 'Compare', 'Chat'):
        tab(page, t)
        time.sleep(1)
        shot(page, f'f-dark-{t.lower()}')
