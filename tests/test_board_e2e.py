"""Evaluations and the leaderboard in a real browser (hand-written): JupyterLab 4 on loopback, Debian's Chromium.

Runs folders with evals.jsonl and blind votes between runs (as the engine writes them, spec of issue 27): (a) the Runs
sidebar shows each run's latest evaluation, its figure beside the base's; (b) the run viewer tables its evaluations;
(c) the Leaderboard lists the runs with their metric and rating intervals, best first; picking two rows and pressing
"Blind A/B in the Studio" opens a new notebook whose cell calls `Studio.blind_ab` with the two runs (not run);
(d) the same in the dark theme, legible; (e) two runs trained on the embedded model, picked on the board: the
notebook's cell, run, opens the Studio on a blind test between them, and a vote there counts as a game on the board.
Screenshots, light and dark, go to $LORA_NB_E2E_OUT (default tests/artifacts/e2e), named board-*.png.
"""
import json, os, sys, time
from pathlib import Path
import pytest
sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
from labtest import Jupyter, chromium, chromium_path, lab_env
from lora_nb.runs import RUN_FILES, Run, append_jsonl

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get('LORA_NB_E2E_OUT', ROOT/'tests'/'artifacts'/'e2e'))
BASE_MODEL, OTHER_BASE = 'HuggingFaceTB/SmolLM2-135M-Instruct', 'Qwen/Qwen2.5-0.5B-Instruct'
DATA = {'name': 'eval split of reverse', 'fingerprint': '9c1e5a7f', 'n': 60}

def fig(value:float, low:float, high:float) -> dict: return dict(value=value, low=low, high=high, n=60, errors=0)

def eval_record(run:Run, own:dict, base:dict, when:str, data:dict=DATA) -> dict:
    "An evals.jsonl line of `run` (spec27): base and the run's adapter on `data`, exact_match and chrF."
    return {'id': f'ev-{when.replace(":", "")}-{run.id[-4:]}', 'time': f'2026-12-08T{when}+00:00', 'kind': 'metrics',
            'data': data, 'metrics': ['exact_match', 'chrf'],
            'settings': {'max_new_tokens': 64, 'chat': True, 'system': None, 'batch_size': 16, 'limit': None},
            'seed': 0, 'base': {'model': BASE_MODEL, 'revision': None},
            'columns': {'__base__': {'run': None}, 'tuned': {'run': run.id, 'adapter': str(run.path/'adapter')}},
            'figures': {'__base__': base, 'tuned': own}}

def votes(a:Run|None, b:Run, wins_a:int, wins_b:int, ties:int=0) -> list[dict]:
    "Blind votes between the adapters of runs a (None: the base) and b, with the runs they came from (`runs`, spec27)."
    ca = '__base__' if a is None else 'A'
    runs = {ca: None if a is None else a.id, 'B': b.id}
    return [{'prompt': f'Reverse w{i}.', 'a': ca, 'b': 'B', 'left': ca, 'winner': w, 'runs': runs,
             'outputs': {ca: 'x', 'B': 'y'}}
            for i, w in enumerate([ca] * wins_a + ['B'] * wins_b + ['tie'] * ties)]

def make_runs(root:Path) -> dict:
    "Three runs on one base (two evaluated twice, one never voted on) and one on another base."
    made = {}
    for name, base in [('fast', BASE_MODEL), ('slow', BASE_MODEL), ('fresh', BASE_MODEL), ('other', OTHER_BASE)]:
        run = Run.create({'lora': {'r': 8}}, name=name, root=root, base_model=base)
        run.log('metrics', *({'step': s, 'loss': 2.0 / s} for s in range(1, 6)))
        run.update(status='completed', step=5, total_steps=5)
        made[name] = run
    base_fig = {'exact_match': fig(0.1, 0.03, 0.18), 'chrf': fig(0.312, 0.28, 0.345)}
    figs = [('fast', (0.9, 0.8, 0.97), (0.88, 0.841, 0.917)), ('slow', (0.6, 0.48, 0.72), (0.7, 0.66, 0.74)),
            ('fresh', (0.45, 0.33, 0.57), (0.6, 0.55, 0.65))]
    first = {'exact_match': fig(0.2, 0.1, 0.3), 'chrf': fig(0.4, 0.36, 0.44)}
    for name, em, chrf in figs:
        run = made[name]
        older = eval_record(run, first, base_fig, '00:10:00')
        append_jsonl(run.path/RUN_FILES['evals'], older,
                     eval_record(run, {'exact_match': fig(*em), 'chrf': fig(*chrf)}, base_fig, '01:23:45'))
    made['fast'].log('votes', *votes(made['fast'], made['slow'], 7, 2, 1))
    made['slow'].log('votes', *votes(None, made['slow'], 2, 5))
    return made

def trained_runs(root:Path) -> list[Run]:
    "Two runs trained two steps each on the embedded model through the Studio's state, each holding out 3 examples."
    from lora_nb.panels.studio import StudioState
    st = StudioState(root)
    st.model.quantization = 'none'
    st.data.text = '\n'.join(json.dumps({'instruction': f'Reverse {w}.', 'output': w[::-1]})
                             for w in ['loop', 'if', 'for', 'while'] * 3)
    st.data.eval_size = 3
    assert st.model.load(st) is not None and st.data.prepare(st) is not None, st.banner
    st.train.train.update(max_steps=2, save_steps=100, probe_steps=0)
    out = []
    for name in ('left', 'right'):
        s = st.train.start(st, name=name)
        assert s is not None and s.wait(120) == 'completed', st.banner
        out.append(s.run)
    return out

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    if chromium_path() is None: pytest.fail("Chromium is missing: `apt-get install -y chromium` (.ci/run does it).")
    from playwright.sync_api import sync_playwright
    work = tmp_path_factory.mktemp('board')
    made = make_runs(work/'runs')
    made['left'], made['right'] = trained_runs(work/'runs')
    OUT.mkdir(parents=True, exist_ok=True)
    with Jupyter('lab', work, env=lab_env(work)) as j, sync_playwright() as p:
        browser = chromium(p)
        page = browser.new_page(viewport={'width': 1400, 'height': 900})
        page.goto(f'{j.url}/lab?token={j.token}')
        page.wait_for_selector('.jp-LauncherCard', timeout=120_000)
        page.locator('.lm-TabBar-tab[title="LoRA runs"], .lm-TabBar-tab[data-id="lora-nb-runs"]').first.click()
        page.wait_for_selector('.jp-LoraNb-runs', timeout=30_000)
        yield dict(j=j, page=page, work=work, runs=made)
        browser.close()

def row(page, run_id:str): return page.locator(f'.jp-LoraNb-run[data-run-id="{run_id}"]')

def board_row(page, run_id:str): return page.locator(f'.jp-LoraNb-boardRow[data-run-id="{run_id}"]')

def test_a_sidebar_shows_the_latest_eval(lab):
    page, runs = lab['page'], lab['runs']
    for name, text in [('fast', 'exact_match 90% [80–97] · base 10%'), ('slow', 'exact_match 60% [48–72] · base 10%'),
                       ('fresh', 'exact_match 45% [33–57] · base 10%')]:
        line = row(page, runs[name].id).locator('.jp-LoraNb-eval')
        line.wait_for(timeout=30_000)
        assert line.inner_text() == text, (name, line.inner_text())
        assert 'eval split of reverse (60 examples)' in line.get_attribute('title')
    assert row(page, runs['other'].id).locator('.jp-LoraNb-eval').count() == 0      # never evaluated: no line
    page.screenshot(path=str(OUT/'board-a-sidebar-light.png'))

def test_b_viewer_tables_the_evals(lab):
    page, fast = lab['page'], lab['runs']['fast']
    row(page, fast.id).locator('.jp-LoraNb-open').click()
    table = page.locator(f'.jp-LoraNb-viewer[data-run-id="{fast.id}"] .jp-LoraNb-evalsTable')
    table.wait_for(timeout=30_000)
    cells = [[c.strip() for c in r.split('\t')] for r in table.locator('tbody tr').all_inner_texts()]
    assert len(cells) == 4, cells                                   # two evaluations of two metrics, newest first
    assert cells[0] == ['2026-12-08 01:23', 'eval split of reverse (60 examples)', 'exact_match', '90% [80–97]',
                        '10% [3–18]'], cells[0]
    assert cells[1][2:] == ['chrf', '88% [84–92]', '31% [28–35]'] and cells[3][0] == '2026-12-08 00:10', cells
    page.screenshot(path=str(OUT/'board-b-viewer-light.png'))
    page.locator(f'.lm-TabBar-tab:has-text("{fast.id}") .lm-TabBar-tabCloseIcon').click()

def test_c_leaderboard_and_a_blind_ab_from_it(lab):
    page, runs, work = lab['page'], lab['runs'], lab['work']
    page.locator('.jp-LoraNb-openBoard').click()
    page.wait_for_selector('.jp-LoraNb-board .jp-LoraNb-boardRow', timeout=30_000)
    board = page.locator('.jp-LoraNb-board')
    assert board.locator('.jp-LoraNb-boardBasePick').input_value() == BASE_MODEL        # the base with most runs
    assert board.locator('.jp-LoraNb-boardMetricPick').input_value() == 'exact_match'
    order = board.locator('.jp-LoraNb-boardRow').evaluate_all('rs => rs.map(r => r.dataset.runId)')
    assert set(order) == {runs['fast'].id, runs['slow'].id, runs['fresh'].id, '__base__'}, order
    assert order[0] == runs['fast'].id, order                                 # most wins: first
    fast = board_row(page, runs['fast'].id)
    assert fast.locator('.jp-LoraNb-boardMetric').inner_text() == '90% [80–97]'
    rating = fast.locator('.jp-LoraNb-boardRating').inner_text()
    value, low, high = (int(x) for x in rating.replace('[', ' ').replace('–', ' ').replace(']', ' ').split())
    assert low <= value <= high and value > 1000, rating                      # it beat the base
    assert board_row(page, runs['fresh'].id).locator('.jp-LoraNb-boardRating').inner_text() == '–'   # no games
    assert board.locator('.jp-LoraNb-blindAb').is_disabled()
    page.screenshot(path=str(OUT/'board-c-leaderboard-light.png'))

    board.locator('.jp-LoraNb-boardBasePick').select_option(OTHER_BASE)       # another base: its runs, no eval set
    board_row(page, runs['other'].id).wait_for(timeout=30_000)
    assert board.locator('.jp-LoraNb-boardRow').count() == 2
    assert board.locator('.jp-LoraNb-boardDataPick').inner_text() == 'no evaluations on this base yet'
    assert board_row(page, runs['other'].id).locator('.jp-LoraNb-boardMetric').inner_text() == '–'
    board.locator('.jp-LoraNb-boardBasePick').select_option(BASE_MODEL)
    board_row(page, runs['fast'].id).wait_for(timeout=30_000)

    board.locator('.jp-LoraNb-boardMetricPick').select_option('chrf')               # another metric: the server ranks
    page.wait_for_function("() => [...document.querySelectorAll('.jp-LoraNb-boardRow .jp-LoraNb-boardMetric')]"
                           ".some(c => c.textContent === '88% [84–92]')", timeout=30_000)
    board_row(page, runs['fast'].id).click()
    board_row(page, runs['slow'].id).locator('input[type=checkbox]').check()
    assert board_row(page, '__base__').locator('input[type=checkbox]').is_disabled()
    button = board.locator('.jp-LoraNb-blindAb')
    assert button.is_enabled() and 'A: fast · B: slow' in board.inner_text()
    page.screenshot(path=str(OUT/'board-d-picked-light.png'))
    button.click()
    cell = f"Studio.blind_ab('{runs['fast'].id}', '{runs['slow'].id}')"
    page.wait_for_selector('.jp-NotebookPanel .jp-Notebook', timeout=60_000)
    page.wait_for_function("t => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')]"
                           ".some(c => c.textContent.includes(t))", arg=cell, timeout=60_000)
    saved = json.loads((work/'blind_ab.ipynb').read_text())
    assert [''.join(c['source']) for c in saved['cells']] == [f'from lora_nb import Studio\n{cell}']
    assert saved['cells'][0]['outputs'] == []                                # not run: the person runs it
    time.sleep(1)
    page.screenshot(path=str(OUT/'board-e-notebook-light.png'))

def test_c2_a_new_evaluation_shows_without_a_refresh(lab):
    "An evaluation stored while the board is shown: the sidebar's line and the board's row follow (no Refresh)."
    page, runs = lab['page'], lab['runs']
    page.locator('.lm-TabBar-tab:has-text("LoRA Leaderboard")').click()
    fresh = runs['fresh']
    base_fig = {'exact_match': fig(0.1, 0.03, 0.18), 'chrf': fig(0.312, 0.28, 0.345)}
    append_jsonl(fresh.path/RUN_FILES['evals'], eval_record(fresh, {'exact_match': fig(0.7, 0.6, 0.8),
                                                                    'chrf': fig(0.75, 0.7, 0.8)}, base_fig, '02:00:00'))
    line = f'.jp-LoraNb-run[data-run-id="{fresh.id}"] .jp-LoraNb-eval'
    page.wait_for_function(f"() => document.querySelector('{line}')?.textContent === "
                           "'exact_match 70% [60–80] · base 10%'", timeout=30_000)
    cell = f'.jp-LoraNb-boardRow[data-run-id="{fresh.id}"] .jp-LoraNb-boardMetric'
    page.wait_for_function(f"() => document.querySelector('{cell}')?.textContent === '75% [70–80]'", timeout=30_000)

LOOK = """(sels) => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => { const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
                     return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const over = (c, b) => c.length === 4 ? [0, 1, 2].map(i => c[i] * c[3] + b[i] * (1 - c[3])) : c.slice(0, 3);
  const bgOf = el => {                      // what shows behind el: its backgrounds, translucent ones blended down
    const layers = [];
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 4 && c[3] === 0) continue;
      layers.push(c);
      if (c.length < 4 || c[3] === 1) break;
    }
    return layers.reverse().reduce((b, c) => over(c, b), [255, 255, 255]);
  };
  const look = (sel, e) => {
    const bg = bgOf(e), [a, b] = [lum(over(rgb(getComputedStyle(e).color), bg)), lum(bg)];
    return {sel, text: e.textContent.trim().slice(0, 30), bg: b,
            ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
  };
  return sels.flatMap(sel => [...document.querySelectorAll(sel)].filter(e => e.offsetParent).slice(0, 6)
                                .map(e => look(sel, e)));
}"""
TEXTS = ['.jp-LoraNb-eval', '.jp-LoraNb-boardRow td', '.jp-LoraNb-boardRows th', '.jp-LoraNb-board .jp-LoraNb-note',
         '.jp-LoraNb-blindAb', '.jp-LoraNb-boardPick']

def dark_theme(page):
    dark = "() => document.body.dataset.jpThemeLight === 'false'"
    for _ in range(3):                              # Settings → Theme → JupyterLab Dark (the submenu opens on hover)
        if page.evaluate(dark): return
        page.click('.lm-MenuBar-itemLabel:text-is("Settings")')
        page.hover('.lm-Menu-itemLabel:text-is("Theme")')
        page.wait_for_timeout(800)
        page.click('.lm-Menu-itemLabel:text-is("JupyterLab Dark")')
        try:
            page.wait_for_function(dark, timeout=30_000)
            return
        except Exception: page.keyboard.press('Escape')
    raise AssertionError('the dark theme did not apply')

def test_d_light_and_dark_are_legible(lab):
    page = lab['page']
    page.locator('.lm-TabBar-tab:has-text("LoRA Leaderboard")').click()
    page.wait_for_selector('.jp-LoraNb-board .jp-LoraNb-boardRow', timeout=30_000)
    light = page.evaluate(LOOK, TEXTS)
    dark_theme(page)
    page.wait_for_timeout(1500)
    dark = page.evaluate(LOOK, TEXTS)
    page.screenshot(path=str(OUT/'board-f-leaderboard-dark.png'))
    assert {e['sel'] for e in dark} == set(TEXTS), dark
    for e in light + dark:
        assert e['ratio'] >= 4.5, e                                         # readable text in both themes
    assert all(e['bg'] < 0.2 for e in dark if e['sel'] != '.jp-LoraNb-blindAb'), dark     # on dark backgrounds
    fast = lab['runs']['fast']
    row(page, fast.id).locator('.jp-LoraNb-open').click()                  # the viewer's table, dark
    page.locator(f'.jp-LoraNb-viewer[data-run-id="{fast.id}"] .jp-LoraNb-evalsTable').wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    table = page.evaluate(LOOK, ['.jp-LoraNb-evalsTable td', '.jp-LoraNb-evalsTable th'])     # 6 cells, 5 heads
    page.screenshot(path=str(OUT/'board-g-viewer-dark.png'))
    assert len(table) == 6 + 5 and all(e['ratio'] >= 4.5 and e['bg'] < 0.2 for e in table), table
    print('\nlowest contrast, light:', min(e['ratio'] for e in light), 'dark:', min(e['ratio'] for e in dark + table))

def test_e_a_blind_ab_from_the_board_runs_in_the_studio(lab):
    "The two trained runs picked on the board: the notebook's cell opens a blind test; a vote is a game on the board."
    page, runs = lab['page'], lab['runs']
    left, right = runs['left'], runs['right']
    page.locator('.lm-TabBar-tab:has-text("LoRA Leaderboard")').click()
    board = page.locator('.jp-LoraNb-board')
    pick = board.locator('.jp-LoraNb-boardBasePick')
    bases = pick.locator('option').evaluate_all('os => os.map(o => o.value)')
    pick.select_option([b for b in bases if b not in (BASE_MODEL, OTHER_BASE)][0])     # the embedded model's
    board_row(page, left.id).wait_for(timeout=30_000)
    assert board_row(page, left.id).locator('.jp-LoraNb-boardRating').inner_text() == '–'     # no games yet
    board_row(page, left.id).click()
    board_row(page, right.id).click()
    board.locator('.jp-LoraNb-blindAb').click()
    cell = f"Studio.blind_ab('{left.id}', '{right.id}')"
    page.wait_for_function("t => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')]"
                           ".some(c => c.textContent.includes(t))", arg=cell, timeout=60_000)
    time.sleep(3)                                   # the kernel starts
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
    vote = page.locator('.jp-OutputArea button.widget-button:visible:has-text("Left is better")').first
    vote.wait_for(timeout=240_000)
    page.screenshot(path=str(OUT/'board-h-studio-blind-dark.png'))
    vote.click()
    t0 = time.time()
    while time.time() - t0 < 30:                    # the vote is stored with both runs' ids
        recs = [r for run in (left, right) for r in run.read('votes').records]
        if any(set((r.get('runs') or {}).values()) >= {left.id, right.id} for r in recs): break
        time.sleep(0.5)
    else: raise AssertionError(f'no vote between {left.id} and {right.id}: {recs}')
    page.locator('.lm-TabBar-tab:has-text("LoRA Leaderboard")').click()
    board.locator('.jp-LoraNb-refresh').click()
    games = f'.jp-LoraNb-boardRow[data-run-id="{left.id}"] td:last-child'
    page.wait_for_function(f"() => document.querySelector('{games}')?.textContent === '1'", timeout=30_000)
    assert board_row(page, right.id).locator('td').last.inner_text() == '1'
    assert board_row(page, left.id).locator('.jp-LoraNb-boardRating').inner_text() != '–'
    page.screenshot(path=str(OUT/'board-i-after-vote-dark.png'))
