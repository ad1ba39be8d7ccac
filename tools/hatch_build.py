"""Hatch build hook: build the JupyterLab extension in `extension/` and ship it in the wheel (hand-written).

- No `extension/package.json` yet: nothing to build, skip quietly.
- Node missing: an editable install skips with a warning (the Python side works without the sidebar);
  a wheel build fails loudly unless a prebuilt `lora_nb/labextension` is already there.
- Set `LORA_NB_SKIP_JS=1` to skip the JavaScript build on purpose (a prebuilt extension is still shipped).
- plotly.js (from the build environment's plotly, a build requirement) goes to the classic Notebook's nbextensions as
  `nbextensions/lora_nb/plotly.min.js`: the live loss plot draws offline there (the CDN is only its fallback).
- npm with the committed package-lock.json (`npm ci`) fetches the packages; `jupyter labextension build` comes from
  the build environment's jupyterlab (a build requirement in pyproject.toml).
"""
import importlib.util, os, shutil, subprocess, sys
from pathlib import Path
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LAB_NAME = "lora-nb"
NBEXT = "share/jupyter/nbextensions/lora_nb"   # served by the classic Notebook at <base_url>/nbextensions/lora_nb/

def plotly_js() -> Path|None:
    "The plotly.min.js inside the installed plotly package (None without plotly)."
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations: return None
    js = Path(list(spec.submodule_search_locations)[0])/"package_data"/"plotly.min.js"
    return js if js.exists() else None

class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        root = Path(self.root)
        ext, built = root/"extension", root/"lora_nb"/"labextension"
        editable = version == "editable"
        if (ext/"package.json").exists() and not os.environ.get("LORA_NB_SKIP_JS"): self._build_js(ext, built, editable)
        if self.target_name == "wheel" and (built/"package.json").exists():
            build_data["shared_data"][str(built)] = f"share/jupyter/labextensions/{LAB_NAME}"
            if (ext/"install.json").exists():   # `jupyter labextension list` then says "(python, lora_nb)"
                dest = f"share/jupyter/labextensions/{LAB_NAME}/install.json"
                build_data["shared_data"][str(ext/"install.json")] = dest
            install = root/"jupyter-config"
            if install.exists(): build_data["shared_data"][str(install)] = "etc/jupyter"
        if self.target_name == "wheel": self._ship_plotly(build_data)

    def _ship_plotly(self, build_data):
        js = plotly_js()
        if js is None:
            self.app.display_warning("plotly is not installed here: the classic Notebook's plot will need its CDN.")
            return
        build_data["shared_data"][str(js)] = f"{NBEXT}/plotly.min.js"

    def _build_js(self, ext, built, editable):
        npm = shutil.which("npm")
        if npm is None:
            msg = "Node/npm not found: the JupyterLab extension is not built."
            if editable or (built/"package.json").exists():
                self.app.display_warning(msg + " Install Node.js >= 18 to get the Runs sidebar.")
                return
            raise RuntimeError(msg + " Install Node.js >= 18, or set LORA_NB_SKIP_JS=1 to build a wheel without it.")
        # `jupyter labextension build` must come from this Python (the build environment has jupyterlab)
        env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        run = lambda *a: subprocess.run([npm, *a], cwd=ext, check=True, env=env)
        if not (ext/"node_modules").exists():
            run(*(["ci"] if (ext/"package-lock.json").exists() else ["install"]), "--no-audit", "--no-fund")
        run("run", "build:prod")
