"""The shape of the house in figures (hand-written): import graph, module sizes, notebook cells.

    python tools/house.py          # one JSON object of figures, then a line per finding
    python tools/house.py --json   # the JSON object only

The import graph is read from the source (every `import`, also inside functions), so a circle or an arrow from the
engine to a face shows here before any test imports anything. `tests/test_house.py` holds the rules to it.
"""
import ast, json, statistics, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT/'lora_nb'
FACES = ('lora_nb.panels', 'lora_nb.cli', 'lora_nb.lab', 'lora_nb.demo', 'lora_nb.prefer_demo', 'lora_nb.__main__')
FACADE = {'lora_nb', 'lora_nb._modidx'}   # the package's lazy names and nbdev's index point everywhere by design
MAX_MODULE, MAX_PANEL = 700, 300

def modules() -> dict:
    "Dotted module name -> path, for every module of the package (nbdev's index and the built extension aside)."
    out = {}
    for p in sorted(PKG.rglob('*.py')):
        if 'labextension' in p.parts: continue
        parts = p.relative_to(ROOT).with_suffix('').parts
        out['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = p
    return out

def _target(mod:str, is_pkg:bool, node:ast.ImportFrom) -> str:
    "The absolute module a `from … import` names."
    if not node.level: return node.module or ''
    base = mod.split('.') if is_pkg else mod.split('.')[:-1]
    base = base[:len(base) - node.level + 1]
    return '.'.join(base + ([node.module] if node.module else []))

def imports(mod:str, path:Path, known:set) -> set:
    "The package's modules that `mod` imports anywhere in its source (top level or inside functions)."
    out, is_pkg = set(), path.name == '__init__.py'
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            t = _target(mod, is_pkg, node)
            subs = {f'{t}.{a.name}' for a in node.names if f'{t}.{a.name}' in known}
            out |= subs or ({t} if t in known else set())
    return out - {mod}

def graph() -> dict:
    "Module -> the package's modules it imports."
    ms = modules()
    return {m: imports(m, p, set(ms)) for m, p in ms.items() if m not in FACADE}

def cycles(g:dict) -> list:
    "The strongly connected groups of more than one module (each holds at least one import circle)."
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g: continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v: break
            if len(group) > 1: out.append(sorted(group))
    sys.setrecursionlimit(10_000)
    for v in g:
        if v not in index: visit(v)
    return out

def is_face(m:str) -> bool: return any(m == f or m.startswith(f + '.') for f in FACES)

def face_arrows(g:dict) -> list:
    "Engine module -> face module imports (the engine never imports a face)."
    return sorted(f'{a} -> {b}' for a, bs in g.items() if not is_face(a) for b in bs if is_face(b))

def lines(path:Path) -> int: return len(path.read_text().splitlines())

def notebooks() -> list:
    "The module notebooks (those with a `default_exp`), as (path, cells)."
    out = []
    for p in sorted((ROOT/'nbs').glob('*.ipynb')):
        cells = json.loads(p.read_text())['cells']
        srcs = [''.join(c['source']) for c in cells if c['cell_type'] == 'code']
        if any('#| default_exp' in s for s in srcs): out.append((p, cells))
    return out

def exported_lines(cells:list) -> list:
    "Lines of code in each exported cell (directives and blank lines aside)."
    out = []
    for c in cells:
        src = ''.join(c['source']) if c['cell_type'] == 'code' else ''
        if not any(d in src for d in ('#| export', '#| exports')) or '#| default_exp' in src: continue
        out.append(sum(1 for ln in src.splitlines() if ln.strip() and not ln.lstrip().startswith('#|')))
    return out

def without_torch(module:str='lora_nb.config') -> bool:
    "Whether `import module` in a fresh process leaves torch unloaded."
    code = f"import sys, {module}\nsys.exit('torch' in sys.modules)"
    return subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True).returncode == 0

def figures() -> dict:
    "The house's figures (see the module docstring)."
    ms, g, nbs = modules(), graph(), notebooks()
    circles = cycles(g)
    sizes = {m: lines(p) for m, p in ms.items() if m not in FACADE}
    panels = {m: n for m, n in sizes.items() if m.startswith('lora_nb.panels.')}
    cells = [c for _, cs in nbs for c in cs if c['cell_type'] == 'code']
    exp = [n for _, cs in nbs for n in exported_lines(cs)]
    silent = [p.name for p, cs in nbs if not any(c.get('outputs') for c in cs if c['cell_type'] == 'code')]
    return {'modules': len(sizes), 'lines': sum(sizes.values()), 'import_cycles': len(circles),
            'cycle_groups': circles, 'engine_to_face': face_arrows(g),
            'largest_module': max(sizes.items(), key=lambda kv: kv[1]),
            'modules_over_700': sorted(m for m, n in sizes.items() if n > MAX_MODULE),
            'largest_panel': max(panels.items(), key=lambda kv: kv[1]) if panels else None,
            'panels_over_300': sorted(m for m, n in panels.items() if n > MAX_PANEL),
            'exported_cells': len(exp), 'exported_cell_median': statistics.median(exp) if exp else 0,
            'exported_cell_max': max(exp, default=0),
            'code_cells_with_output_pct': round(100 * sum(bool(c.get('outputs')) for c in cells) / len(cells), 1),
            'module_notebooks': len(nbs), 'module_notebooks_without_output': silent,
            'config_without_torch': without_torch()}

if __name__ == '__main__':
    f = figures()
    print(json.dumps(f))
    if '--json' not in sys.argv:
        for k, v in f.items():
            if k not in ('cycle_groups',): print(f'{k}: {v}')
