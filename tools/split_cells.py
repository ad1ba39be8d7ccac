"""Split long exported notebook cells at their top-level definitions (hand-written).

    python tools/split_cells.py nbs/11_train.ipynb [more notebooks]   # rewrites them in place

An exported cell of more than MAX lines that holds several top-level definitions becomes one cell per definition
(statements and comments between definitions go with the definition after them; neighbours are joined again while
they stay within MAX lines). Each new cell keeps the cell's directives (`#| export`, …). The exported module is the
same code in the same order; run `nbdev-export` and `nbdev-clean --fname` on the notebook after it.
"""
import ast, json, sys, uuid
from pathlib import Path

MAX = 10

def _code_lines(lines:list) -> int: return sum(1 for ln in lines if ln.strip())

def chunks(body:list) -> list:
    "The lines of `body` cut after each top-level definition."
    tree = ast.parse('\n'.join(body))
    ends = [n.end_lineno for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    if len(ends) < 2: return [body]
    cuts = [0] + ends[:-1] + [len(body)]
    parts = [body[a:b] for a, b in zip(cuts, cuts[1:])]
    return [p for p in (_trim(p) for p in parts) if p]

def _trim(lines:list) -> list:
    while lines and not lines[0].strip(): lines = lines[1:]
    while lines and not lines[-1].strip(): lines = lines[:-1]
    return lines

def joined(parts:list) -> list:
    "Neighbouring parts joined while they stay within MAX code lines."
    out = []
    for p in parts:
        if out and _code_lines(out[-1]) + _code_lines(p) <= MAX: out[-1] = out[-1] + ['', ''] + p
        else: out.append(p)
    return out

def split_cell(cell:dict) -> list:
    "The cell, or the cells it splits into."
    src = ''.join(cell['source'])
    if cell['cell_type'] != 'code' or '#| default_exp' in src: return [cell]
    lines = src.splitlines()
    directives = [ln for ln in lines if ln.lstrip().startswith('#|')]
    if not any(d.split()[1:2] in (['export'], ['exports']) for d in directives): return [cell]
    body = [ln for ln in lines if not ln.lstrip().startswith('#|')]
    if _code_lines(body) <= MAX: return [cell]
    parts = joined(chunks(body))
    if len(parts) < 2: return [cell]
    out = []
    for i, p in enumerate(parts):
        text = '\n'.join(directives + p)
        c = {**cell, 'source': text.splitlines(keepends=True), 'outputs': [], 'execution_count': None}
        if i: c['id'] = uuid.uuid4().hex[:8]
        out.append(c)
    return out

def split(nb:Path) -> int:
    "Split the long exported cells of `nb` in place; the number of cells added."
    d = json.loads(nb.read_text())
    before = len(d['cells'])
    d['cells'] = [c for cell in d['cells'] for c in split_cell(cell)]
    nb.write_text(json.dumps(d, indent=1, ensure_ascii=False) + '\n')
    return len(d['cells']) - before

if __name__ == '__main__':
    for p in sys.argv[1:]: print(f'{p}: {split(Path(p))} cells added')
