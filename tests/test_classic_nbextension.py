"""The classic Notebook draws the live plot offline: the wheel installs plotly.js as its nbextension (hand-written).

The browser side (the CDN blocked, the plot drawn from this copy) is in tests/test_frontends.py.
"""
import sys, zipfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
from hatch_build import NBEXT, plotly_js
from test_packaging import _build, _tracked_copy

def test_wheel_ships_plotly_js_as_a_classic_nbextension(tmp_path):
    repo = _tracked_copy(tmp_path/'repo')
    r = _build(repo, 'wheel', {'LORA_NB_SKIP_JS': '1'})
    assert r.returncode == 0, r.stderr[-2000:]
    whl = zipfile.ZipFile(next((repo/'dist').glob('lora_nb-*.whl')))
    name = f'lora_nb-0.1.0.data/data/{NBEXT}/plotly.min.js'     # -> <prefix>/share/jupyter/nbextensions/lora_nb/
    assert name in whl.namelist(), [n for n in whl.namelist() if '.data/' in n]
    assert whl.getinfo(name).file_size == plotly_js().stat().st_size   # the installed plotly's own plotly.js

def test_plot_html_loads_the_nbextension_before_the_cdn():
    from lora_nb.panels.plots import plot_bundle
    h = plot_bundle({'data': [], 'layout': {}, 'config': {}})['text/html']
    assert NBEXT.removeprefix('share/jupyter/') + '/plotly.min' in h      # the path the wheel installs it under
    assert h.index("'/') + 'nbextensions/lora_nb/plotly.min'") < h.index('cdn.plot.ly')
