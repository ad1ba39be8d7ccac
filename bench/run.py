"""Run every benchmark (or those named) and print their JSON lines (hand-written).

    python bench/run.py                      # all
    python bench/run.py load_4bit_vs_bf16    # one
    python bench/run.py "cpu_speed --quick"  # one, with its arguments

`cpu_speed` and `gpu` run here in their quick and dry modes; run them alone for the full figures
(`python bench/cpu_speed.py`, `python bench/gpu.py` on a GPU machine).
"""
import subprocess, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALL = ['load_4bit_vs_bf16', 'estimate_vs_measured', 'thread_vs_main', 'session_vs_sft', 'padding_free', 'ddp_vs_single',
       'mixed_batch', 'studio_overhead', 'runs_list',
       'import_time', 'cpu_speed --quick', 'gpu --dry']

def main(names):
    failed = 0
    for n in names or ALL:
        name, *args = n.split()
        r = subprocess.run([sys.executable, str(HERE/f'{name}.py'), *args], cwd=HERE.parent)
        failed += r.returncode != 0
    sys.exit(1 if failed else 0)

if __name__ == '__main__': main(sys.argv[1:])
