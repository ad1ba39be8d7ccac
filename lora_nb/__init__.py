"""lora_nb: fine-tune LoRA adapters interactively in Jupyter (hand-written).

Importing the package is light: the engine's heavy modules (torch, transformers) load on first use of a name
below, so the Jupyter server extension can list runs and the Studio can show itself without them.
"""
__version__ = "0.1.0"

import logging as _logging

class _DropNotice(_logging.Filter):
    "Drops one library notice that lora_nb handles itself (shared/DESIGN.md hazards 3 and 20)."
    def __init__(self, text:str):
        super().__init__()
        self.text = text
    def filter(self, record): return self.text not in record.getMessage()

# Installed here, before any module of the package can import bitsandbytes (peft and Trainer do): bitsandbytes' notice
# that the optional `kernels` package is missing, and, offline, `kernels`' notice that it skipped a trust check.
_NOTICES = {'bitsandbytes.backends.cpu.ops': 'kernels-community',
            'kernels._internals.hf_hub': "Skipping publisher trust check for 'kernels-community/"}
for _name, _text in _NOTICES.items(): _logging.getLogger(_name).addFilter(_DropNotice(_text))

_LAZY = {'load_model': 'models', 'ModelSettings': 'settings', 'EMBEDDED_MODEL': 'settings', 'estimate': 'memory',
         'prepare': 'data', 'lint': 'data', 'Run': 'runs', 'list_runs': 'runs', 'LoraNbError': 'errors',
         'RunConfig': 'config', 'run_config': 'config', 'Studio': 'panels.studio_view', 'Session': 'train',
         'LoraSettings': 'settings', 'TrainSettings': 'settings', 'DataSettings': 'settings', 'compare': 'generation'}
__all__ = list(_LAZY)

def _jupyter_server_extension_points():
    "The Jupyter server extension (runs API for the JupyterLab sidebar); enabled by jupyter-config/ on install."
    from .lab.server import LoraNb
    return [{'module': 'lora_nb', 'app': LoraNb}]

def _jupyter_labextension_paths():
    "The prebuilt JupyterLab extension inside the package (for `jupyter labextension develop`)."
    return [{'src': 'labextension', 'dest': 'lora-nb'}]

def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f'lora_nb.{_LAZY[name]}'), name)
    raise AttributeError(f"module 'lora_nb' has no attribute {name!r}")
