"""Write README.md from nbs/index.ipynb (hand-written; nbdev's own readme needs Quarto, which is not installable
offline).

Markdown cells are copied; code cells become fenced Python blocks, with their text output when they have one.
Cells whose first line is a `#| hide` directive are left out. `--check` exits 1 if README.md is stale.
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _src(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']

def _out(cell):
    txt = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream': txt.append(''.join(o['text']))
        elif 'text/plain' in o.get('data', {}): txt.append(''.join(o['data']['text/plain']))
    return ''.join(txt).rstrip()

def render(nb_path=ROOT/'nbs'/'index.ipynb'):
    "README text for the notebook at `nb_path`."
    parts = ['<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file -->']
    for cell in json.loads(Path(nb_path).read_text())['cells']:
        src = _src(cell).strip()
        if not src or src.startswith('#| hide') or cell['cell_type'] == 'raw': continue
        if cell['cell_type'] == 'markdown': parts.append(src.replace('](images/',
                                                                     # images live beside the notebook
                                                                     '](nbs/images/'))
        elif cell['cell_type'] == 'code':
            lines = [l for l in src.splitlines() if not l.startswith('#|')]
            parts.append('```python\n' + '\n'.join(lines) + '\n```')
            if (o := _out(cell)): parts.append('```\n' + o + '\n```')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text: sys.exit('README.md is stale: run `make export` (or '
                                                                       'python tools/readme.py).')
    else: readme.write_text(text)
