"""Tiny benchmark harness (hand-written).

Each benchmark is a script in bench/ that prints one JSON line of figures. Measurements that must not share a
process (peak memory, load time) run in fresh subprocesses through `measure`, which returns the JSON the child
printed last.
"""
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def status(field:str) -> int:
    "A `/proc/self/status` field (VmRSS, VmHWM, …) in bytes."
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'): return int(line.split()[1]) * 1024
    raise KeyError(field)

def reset_peak():
    "Reset this process's peak RSS (VmHWM) to its current RSS (Linux `clear_refs` 5)."
    Path('/proc/self/clear_refs').write_text('5')

def emit(**figures):
    "Print the figures as one JSON line."
    print(json.dumps(figures, sort_keys=False), flush=True)

def measure(code:str, *args, env:dict|None=None, timeout:int=1800) -> dict:
    "Run `python -c code *args` in a fresh process; return the last JSON line it printed."
    r = subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       cwd=ROOT, env={**os.environ, **(env or {})})
    if r.returncode: raise RuntimeError(f"benchmark child failed:\n{r.stderr[-3000:]}")
    return json.loads([l for l in r.stdout.splitlines() if l.startswith('{')][-1])

def ratio(a, b, nd=3): return round(a / b, nd)
