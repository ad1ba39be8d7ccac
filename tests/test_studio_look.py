"""What a person sees in the Studio, in a real browser (hand-written): JupyterLab 4 on loopback, Debian's Chromium.

A new kernel picks up a finished run: the line says what Pick up did (no "Resume continues it" for a completed run),
the run's adapter is offered in Chat at once, a rated reply says so in words, and the pick-up line goes as soon as a
new run starts. Then the dark theme: banners and the data preview's token chips are dark-tinted, their text readable.
Screenshots, light and dark, go to $LORA_NB_E2E_OUT (default tests/artifacts/e2e).
"""
import json, os, sys, time
from pathlib import Path
import pytest
sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
from labtest import Jupyter, chromium, chromium_path, lab_env, notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get('LORA_NB_E2E_OUT', ROOT/'tests'/'artifacts'/'e2e'))
CELL = "from lora_nb.panels.studio_view import Studio\nStudio(root='runs')"
OUTS = '.jp-OutputArea'

def finished_run(runs:Path) -> str:
    "A run trained through the Studio's state (two steps, pasted examples kept with it); its id."
    from lora_nb.panels.studio import StudioState
    st = StudioState(runs)
    st.model.quantization = 'none'
    st.data.text = '\n'.join(json.dumps({'instruction': f'Reverse {w}.', 'output': w[::-1]})
                             for w in ['loop', 'if', 'for'] * 3)
    st.data.eval_size = 0
    assert st.model.load(st) is not None and st.data.prepare(st) is not None, st.banner
    st.train.train.update(max_steps=2, save_steps=100, probe_steps=0)
    s = st.train.start(st, name='first')
    assert s is not None and s.wait(120) == 'completed', st.banner
    return s.run.id

def button(page, text:str): return page.locator(f'{OUTS} button.widget-button:visible:has-text("{text}")').first

def tab(page, title:str): page.locator(f'{OUTS} .lm-TabBar-tab:visible:has-text("{title}")').first.click()

def shown(page, text:str, timeout:float=120_000):
    page.wait_for_function("t => [...document.querySelectorAll('.jp-OutputArea .widget-html')]"
                           ".some(e => e.offsetParent !== null && e.textContent.includes(t))", arg=text,
                           timeout=timeout)

def pickup_line(page) -> str:
    return page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea .widget-html')].filter(e => "
                         "e.offsetParent && e.textContent.includes('Picked up')).map(e => e.textContent).join('|')")

LOOK = """() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => { const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
                     return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const page = rgb(getComputedStyle(document.querySelector('.jp-OutputArea')).backgroundColor);
  const base = page.length === 4 && page[3] === 0 ? rgb(getComputedStyle(document.body).backgroundColor) : page;
  const over = (c, b) => c.length === 4 ? [0, 1, 2].map(i => c[i] * c[3] + b[i] * (1 - c[3])) : c.slice(0, 3);
  const look = e => { const s = getComputedStyle(e), bg = over(rgb(s.backgroundColor), base), fg = rgb(s.color);
                      const [a, b] = [lum(fg), lum(bg)];
                      return {text: e.textContent.trim().slice(0, 40), bg: lum(bg), ratio: (Math.max(a, b) + 0.05) /
                              (Math.min(a, b) + 0.05)}; };
  const banners = [...document.querySelectorAll('.jp-OutputArea .widget-html div[style*="padding:6px 10px"]')]
    .filter(e => e.offsetParent).map(look);
  const chips = [...document.querySelectorAll(".jp-OutputArea span[title=trained], .jp-OutputArea span[title=masked]")]
    .filter(e => e.offsetParent).slice(0, 20).map(look);
  return {page: lum(base), banners, chips};
}"""

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    if chromium_path() is None: pytest.fail("Chromium is missing: `apt-get install -y chromium` (.ci/run does it).")
    from playwright.sync_api import sync_playwright
    work = tmp_path_factory.mktemp('look')
    (work/'look.ipynb').write_text(json.dumps(notebook([CELL])))
    run_id = finished_run(work/'runs')
    OUT.mkdir(parents=True, exist_ok=True)
    with Jupyter('lab', work, env=lab_env(work)) as j, sync_playwright() as p:
        browser = chromium(p)
        page = browser.new_page(viewport={'width': 1280, 'height': 1000})
        yield dict(j=j, page=page, run=run_id, work=work)
        browser.close()

def test_pick_up_chat_rating_and_the_pickup_line_going(lab):
    page, j = lab['page'], lab['j']
    page.goto(f'{j.url}/lab/tree/look.ipynb?token={j.token}')
    page.locator('.jp-NotebookPanel .jp-Cell').first.wait_for(timeout=120_000)
    time.sleep(3)
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
    button(page, 'Pick up').wait_for(timeout=180_000)
    button(page, 'Pick up').click()
    shown(page, 'Picked up', timeout=180_000)
    line = pickup_line(page)
    assert 'Resume continues it' not in line and 'Start trains a new run' in line, line   # it completed
    page.locator(f'{OUTS} .lm-TabBar-tab.lm-mod-current:has-text("Train")').wait_for(timeout=120_000)   # then its curve
    page.screenshot(path=str(OUT/'look-a-picked-up.png'))
    tab(page, 'Chat')
    page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea .widget-dropdown select')]"   # offered
                           ".some(s => s.offsetParent && [...s.options].some(o => o.text.startsWith('first\u00a0(')))",
                           timeout=30_000)                           # without loading it again
    page.locator(f'{OUTS} textarea[placeholder="Your message"]:visible').fill('Reverse loop.')
    button(page, 'Send').click()
    button(page, 'Good').wait_for(timeout=120_000)
    button(page, 'Good').click()
    shown(page, 'rated good, saved with the run')                          # the rating, in words by the reply
    page.screenshot(path=str(OUT/'look-b-rated.png'))
    tab(page, 'Train')
    button(page, 'Start').click()
    page.wait_for_function("() => ![...document.querySelectorAll('.jp-OutputArea .widget-html')]"
                           ".some(e => e.offsetParent && e.textContent.includes('Picked up'))", timeout=30_000)
    shown(page, 'Training completed', timeout=240_000)
    page.screenshot(path=str(OUT/'look-c-trained.png'))

def test_dark_theme_banners_and_token_chips(lab):
    page = lab['page']
    tab(page, 'Data')
    page.locator(f'{OUTS} span[title="trained"]').first.wait_for(timeout=30_000)   # Pick up prepared the data
    light = page.evaluate(LOOK)
    page.screenshot(path=str(OUT/'look-d-light-data.png'))
    page.click('.lm-MenuBar-itemLabel:text-is("Settings")')
    page.click('.lm-Menu-itemLabel:text-is("Theme")')
    page.click('.lm-Menu-itemLabel:text-is("JupyterLab Dark")')
    time.sleep(2)
    dark = page.evaluate(LOOK)
    page.screenshot(path=str(OUT/'look-e-dark-data.png'))
    tab(page, 'Train')
    time.sleep(1)
    dark_train = page.evaluate(LOOK)
    page.screenshot(path=str(OUT/'look-f-dark-train.png'))
    assert dark['page'] < 0.2 < light['page'] and dark['chips'] and dark_train['banners'], (dark, dark_train)
    for e in dark['chips'] + dark_train['banners'] + light['chips']:
        assert e['ratio'] >= 4.5, e                                         # readable text
    for e in dark['chips'] + dark_train['banners']:
        assert e['bg'] < 0.25, e                                            # dark-tinted, not a light box

EVAL_LOOK = """() => [...document.querySelectorAll('.jp-OutputArea table.lnb-eval td')].filter(e => e.offsetParent)
  .slice(0, 12).map(e => { const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
    const lum = c => { const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
                       return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
    let bg = null;
    for (let n = e; n && !bg; n = n.parentElement) { const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) bg = c; }
    const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(bg || [255, 255, 255])];
    return {text: e.textContent.trim().slice(0, 30), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)}; })"""

def test_evaluate_tab_dark_and_light(lab):
    "The Evaluate tab on a file of held-out examples: the table, the plot and the examples that differ, both themes."
    page = lab['page']
    (lab['work']/'held.jsonl').write_text(''.join(json.dumps({'instruction': f'Reverse {w}.', 'output': w[::-1]}) + '\n'
                                                  for w in ['loop', 'if', 'for', 'while']))
    tab(page, 'Evaluate')
    page.locator(f'{OUTS} .widget-toggle-button:visible:has-text("file")').first.click()
    page.locator(f'{OUTS} .widget-hbox:has(.widget-label:text-is("path")) input:visible').first.fill('held.jsonl')
    page.locator(f'{OUTS} .widget-checkbox:visible:has-text("chrf") input').first.check()
    button(page, 'Evaluate').click()
    shown(page, 'Where they differ', timeout=180_000)
    shown(page, 'example(s) where they differ')                           # on chrf at least: the answers changed
    page.locator(f'{OUTS} .js-plotly-plot:visible, {OUTS} .plot-container:visible').first.wait_for(timeout=60_000)
    page.locator(f'{OUTS} table.lnb-eval').first.evaluate("e => e.scrollIntoView({block: 'start'})")
    time.sleep(1)
    page.screenshot(path=str(OUT/'look-g-dark-evaluate.png'))
    dark = page.evaluate(EVAL_LOOK)
    page.click('.lm-MenuBar-itemLabel:text-is("Settings")')
    page.click('.lm-Menu-itemLabel:text-is("Theme")')
    page.click('.lm-Menu-itemLabel:text-is("JupyterLab Light")')
    time.sleep(2)
    page.screenshot(path=str(OUT/'look-h-light-evaluate.png'))
    light = page.evaluate(EVAL_LOOK)
    assert dark and light and any('base' == e['text'] for e in light), (dark, light)
    for e in dark + light: assert e['ratio'] >= 4.5, e                    # the table's text is readable in both
