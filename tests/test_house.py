"""The house's shape, read from the source (tools/house.py): no import circle, no arrow from the engine to a face,
modules and panel files within their sizes, every module notebook showing an output, config without torch."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import house   # noqa: E402  (a script folder, not a package)

def test_cycles_are_found():
    "The reader finds a circle through three modules and none in a chain (so the rules below can fail)."
    assert house.cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert house.cycles({'a': {'b'}, 'b': {'c'}, 'c': set()}) == []

def test_imports_read_relative_and_lazy(tmp_path):
    "Relative imports, `from . import x` and imports inside functions are all arrows."
    f = tmp_path/'m.py'
    f.write_text("from .data import prepare\nfrom . import runs\ndef f():\n    from .panels.views import Studio\n")
    known = {'lora_nb.data', 'lora_nb.runs', 'lora_nb.panels.views', 'lora_nb.m'}
    assert house.imports('lora_nb.m', f, known) == {'lora_nb.data', 'lora_nb.runs', 'lora_nb.panels.views'}

def test_no_import_cycles():
    assert house.cycles(house.graph()) == []

def test_engine_never_imports_a_face():
    assert house.face_arrows(house.graph()) == []

def test_sizes():
    f = house.figures()
    assert f['modules_over_700'] == [] and f['panels_over_300'] == [], (f['modules_over_700'], f['panels_over_300'])

def test_every_module_notebook_shows_an_output():
    assert house.figures()['module_notebooks_without_output'] == []

def test_config_imports_without_torch():
    "Reading a YAML config must not load the engine's heavy libraries."
    assert house.without_torch('lora_nb.config')
