"""Hatch build hook: build the JupyterLab extension in `extension/` and ship it in the wheel (hand-written).

- No `extension/package.json` yet: nothing to build, skip quietly.
- Node missing: an editable install skips with a warning (the Python side works without the sidebar);
  a wheel build fails loudly unless a prebuilt `lora_nb/labextension` is already there.
- Set `LORA_NB_SKIP_JS=1` to skip the JavaScript build on purpose (a prebuilt extension is still shipped).
"""
import os, shutil, subprocess
from pathlib import Path
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LAB_NAME = "lora-nb"

class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        root = Path(self.root)
        ext, built = root/"extension", root/"lora_nb"/"labextension"
        editable = version == "editable"
        if (ext/"package.json").exists() and not os.environ.get("LORA_NB_SKIP_JS"): self._build_js(ext, built, editable)
        if self.target_name == "wheel" and (built/"package.json").exists():
            build_data["shared_data"][str(built)] = f"share/jupyter/labextensions/{LAB_NAME}"
            install = root/"jupyter-config"
            if install.exists(): build_data["shared_data"][str(install)] = "etc/jupyter"

    def _build_js(self, ext, built, editable):
        npm = shutil.which("jlpm") or shutil.which("npm")
        if npm is None:
            msg = "Node/npm not found: the JupyterLab extension is not built."
            if editable or (built/"package.json").exists():
                self.app.display_warning(msg + " Install Node.js >= 18 to get the Runs sidebar.")
                return
            raise RuntimeError(msg + " Install Node.js >= 18, or set LORA_NB_SKIP_JS=1 to build a wheel without it.")
        run = lambda *a: subprocess.run([npm, *a], cwd=ext, check=True)
        if not (ext/"node_modules").exists(): run("install", "--no-audit", "--no-fund")
        run("run", "build:prod" if not editable else "build")
