"""Screenshots of the Studio in a real JupyterLab, in headless Chromium driven by Playwright (hand-written).

    python tools/studio_screenshots.py OUT_DIR [lab|notebook] [light|dark]   # JupyterLab 4 (default) or Notebook 7

Starts `jupyter lab` on loopback with a token in a temporary folder, writes a notebook whose cells open the Studio
and drive it (embedded model in 4-bit, the demo data, a short run), opens it in Chromium, runs all cells, and saves
a screenshot of each tab while and after it trains. Needs Debian's chromium (`apt-get install chromium`) and the
`playwright` package (and `notebook` for Notebook 7): `pip install playwright notebook`; no browser download.
"""
import json, sys, tempfile, time
from pathlib import Path
from labtest import Jupyter, chromium, notebook

CELLS = [
    "from lora_nb import Studio\nstudio = Studio(root='runs')\nstudio",
    "import json\nfrom lora_nb.demo import load_demo_data\ntrain, test = load_demo_data()\n"
    "studio.model.load_btn.click()\n"
    "examples = [{'instruction': r['instruction'], 'output': r['output']} for r in train]\n"
    "studio.data.fields['text'].w.value = '\\n'.join(json.dumps(e) for e in examples)\n"
    "studio.data.prep_btn.click()\n"
    "for k, v in dict(max_steps=60, per_device_train_batch_size=8, learning_rate='1e-3').items():\n"
    "    next(f for f in studio.train.fields if f.key == 'train.' + k).w.value = v\n"
    "studio.train.probes.value = 'What is the type of 3.5?'\n"
    "next(f for f in studio.train.fields if f.key == 'train.probe_steps').w.value = 20\n"
    "studio.tabs.selected_index = 2\nstudio.train.start_btn.click()",
]

def _dark(page):
    "Switch JupyterLab to its dark theme (Settings > Theme)."
    page.click('.lm-MenuBar-itemLabel:text-is("Settings")', timeout=30_000)
    page.click('.lm-Menu-itemLabel:text-is("Theme")', timeout=30_000)
    page.click('.lm-Menu-itemLabel:text-is("JupyterLab Dark")', timeout=30_000)
    time.sleep(2)

def main(out, app='lab', theme='light'):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp())
    (work/'studio.ipynb').write_text(json.dumps(notebook(CELLS)))
    with Jupyter(app, work) as j:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            b = chromium(p)
            page = b.new_page(viewport={'width': 1400, 'height': 1100})
            page.goto(f"{j.url}/{'lab/tree' if app == 'lab' else 'notebooks'}/studio.ipynb?token={j.token}")
            page.wait_for_selector('.jp-Notebook', timeout=120_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"], .jp-DebuggerBugButton, '
                                   '.jp-KernelStatus', timeout=120_000)
            time.sleep(8)                                              # the kernel starts
            # the news prompt
            if page.locator('button:text-is("No")').count(): page.locator('button:text-is("No")').first.click()
            if theme == 'dark': _dark(page)
            page.click('.lm-MenuBar-itemLabel:text-is("Run")', timeout=30_000)
            page.click('.lm-Menu-itemLabel:text-is("Run All Cells")', timeout=30_000)
            try:
                page.wait_for_selector('.widget-tab', timeout=120_000)
                page.wait_for_selector('text=tokens/s', timeout=300_000)
            except Exception:
                page.screenshot(path=str(out/f'{app}-{theme}-failed.png'))   # what the page showed instead
                raise
            time.sleep(3)
            page.locator('.widget-tab').first.screenshot(path=str(out/f'{app}-{theme}-train-running.png'))
            page.wait_for_selector('text=Training completed', timeout=600_000)
            time.sleep(2)
            page.locator('.widget-tab').first.screenshot(path=str(out/f'{app}-{theme}-train-done.png'))
            for i, name in enumerate(['model', 'data']):
                page.locator('.widget-tab .lm-TabBar-tab').nth(i).click()
                time.sleep(1.5)
                page.locator('.widget-tab').first.screenshot(path=str(out/f'{app}-{theme}-{name}.png'))
            b.close()
    print('\n'.join(str(p) for p in sorted(out.glob('*.png'))))

if __name__ == '__main__': main(*(sys.argv[1:] or ['screenshots']))
