"""Import time: `lora_nb`, `lora_nb.panels.studio` (every tab's state), and the time to a displayed Studio
(hand-written).

Each figure is the median of fresh processes. `before` is an earlier commit of this repository (default: the last
commit before the house was restructured), checked out with `git worktree` and put first on the path; `after` is
this tree. Both run with the same interpreter and libraries, side by side in one run.

    python bench/import_time.py [--before REV] [--repeat N]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile
from pathlib import Path
from harness import ROOT, emit, ratio

CASES = {
    'import_lora_nb': "import lora_nb",
    # every tab's state: lora_nb.panels.studio since issue 26, lora_nb.panels.state before it
    'import_panels_state': "import importlib, importlib.util as u\n"
                           "new = u.find_spec('lora_nb.panels.studio')\n"
                           "importlib.import_module('lora_nb.panels.studio' if new else 'lora_nb.panels.state')",
    # what a notebook cell `Studio()` does before the frontend draws it: build the widgets and their view mimebundle
    'studio_displayed': "from lora_nb import Studio\ns = Studio(root=sys.argv[1])\nassert s.widget._repr_mimebundle_()",
}
CHILD = """import sys, time
t0 = time.perf_counter()
{code}
dt = time.perf_counter() - t0
heavy = [m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules]
import json; print(json.dumps({{'s': dt, 'heavy': heavy}}))
"""

def once(tree:Path, code:str, runs:str) -> dict:
    r = subprocess.run([sys.executable, '-c', CHILD.format(code=code), runs], capture_output=True, text=True,
                       cwd=tempfile.gettempdir(), env={**os.environ, 'PYTHONPATH': str(tree)}, timeout=600)
    if r.returncode: raise RuntimeError(f"{tree}: {code!r} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def worktree(rev:str) -> Path:
    d = Path(tempfile.mkdtemp(prefix='lora_nb-before-'))/'tree'
    subprocess.run(['git', 'worktree', 'add', '--detach', '-f', str(d), rev], cwd=ROOT, check=True, capture_output=True)
    return d

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--before', default='a2ffead')
    ap.add_argument('--repeat', type=int, default=5)
    a = ap.parse_args()
    trees = {'before': worktree(a.before), 'after': ROOT}
    runs = tempfile.mkdtemp(prefix='lora_nb-runs-')
    try:
        out = {}
        for name, code in CASES.items():
            for label, tree in trees.items():   # interleaved, so a busy moment hits both
                once(tree, code, runs)   # warm the file cache
            res = {label: [once(tree, code, runs) for _ in range(a.repeat)] for label, tree in trees.items()}
            for label, rs in res.items():
                out[f'{name}_{label}_s'] = round(statistics.median(r['s'] for r in rs), 3)
                out[f'{name}_{label}_heavy'] = rs[0]['heavy']
            out[f'{name}_speedup'] = ratio(out[f'{name}_before_s'], out[f'{name}_after_s'], 1)
        emit(bench='import_time', before=a.before, repeat=a.repeat, **out)
    finally:
        subprocess.run(['git', 'worktree', 'remove', '--force', str(trees['before'])], cwd=ROOT, capture_output=True)

if __name__ == '__main__': main()
