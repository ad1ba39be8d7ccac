"""Keep small, stable outputs in the notebooks, so a reader on GitHub sees results (hand-written).

    python tools/outputs.py                          # every numbered notebook in nbs/
    python tools/outputs.py nbs/01_settings.ipynb   # some of them

Each notebook runs twice with nbdev's own test runner (on a copy, saving its outputs). A code cell keeps its output
when both runs gave the same output, it is short, and it holds no widget, no error, no stderr and no temporary path or
memory address; every other cell's output is cleared. `nbdev-clean` leaves these outputs as they are, so the tree
stays clean. Run it after changing a notebook's demo cells (`make outputs`).
"""
import json, re, shutil, subprocess, sys
from pathlib import Path
from nbdev.test import test_nb

ROOT = Path(__file__).resolve().parent.parent
MAX_CHARS = 2000
KEPT_MIMES = {'text/plain', 'text/html', 'text/markdown'}
UNSTABLE = re.compile(r'/tmp/|tmp\w{8}| at 0x[0-9a-f]+|\d{8}-\d{6}')   # temp folders, addresses, run-id timestamps

def run_copy(nb:Path, i:int) -> dict:
    "Cell id -> outputs of one run of `nb` (on a copy next to it, so relative paths hold)."
    tmp = nb.with_name(f'.outputs-{i}-{nb.name}')
    shutil.copy(nb, tmp)
    try:
        ok, _ = test_nb(tmp, save=True, showerr=True)
        if not ok: raise SystemExit(f"{nb.name} failed: fix it (nbdev-test) before keeping its outputs")
        cells = json.loads(tmp.read_text())['cells']
    finally: tmp.unlink(missing_ok=True)
    return {c['id']: c.get('outputs', []) for c in cells if c['cell_type'] == 'code'}

def strip(outputs:list) -> list:
    "`outputs` without execution counts and metadata, the parts that change between runs."
    out = []
    for o in outputs:
        o = {k: v for k, v in o.items() if k not in ('execution_count', 'metadata')}
        if 'data' in o: o['data'] = {k: v for k, v in o['data'].items() if k in KEPT_MIMES}
        out.append(o)
    return out

def keep(a:list, b:list) -> bool:
    "Whether an output seen as `a` and `b` in two runs belongs in the notebook."
    if not a or a != b: return False
    text = json.dumps(a)
    if len(text) > MAX_CHARS or UNSTABLE.search(text): return False
    return all(o['output_type'] in ('execute_result', 'display_data', 'stream') and o.get('name') != 'stderr'
               and (o['output_type'] == 'stream' or o.get('data')) for o in a)

def store(nb:Path):
    "Run `nb` twice and keep the outputs that pass `keep`."
    first, second = run_copy(nb, 1), run_copy(nb, 2)
    d = json.loads(nb.read_text())
    kept = 0
    for c in d['cells']:
        if c['cell_type'] != 'code': continue
        a, b = strip(first.get(c['id'], [])), strip(second.get(c['id'], []))
        c['outputs'] = [{**o, **({'metadata': {}} if 'data' in o else {}),
                         **({'execution_count': None} if o['output_type'] == 'execute_result' else {})}
                        for o in a] if keep(a, b) else []
        c['execution_count'] = None
        kept += bool(c['outputs'])
    nb.write_text(json.dumps(d, indent=1, ensure_ascii=False) + '\n')
    subprocess.run([str(Path(sys.executable).parent/'nbdev-clean'), '--fname', str(nb)], check=True)   # its key order
    print(f"{nb.name}: kept the output of {kept} cell(s)")

if __name__ == '__main__':
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT/'nbs').glob('[0-9]*.ipynb'))
    for p in paths: store(p.resolve())
