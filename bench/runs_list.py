"""The sidebar's list route with thousands of runs (hand-written).

N run folders (each with 60 metrics lines; 1 in 100 running) under a temporary runs root. Side by side in one run:
- `list_runs` (reads every run.json and metrics tail, then pages) vs `RunIndex.page` warm (stat-keyed cache; what
  the server answers while the sidebar polls), and the index's first, cold call;
- the same page over HTTP from a real `jupyter server` with the extension, warm.
Figures in milliseconds; `speedup` = list_runs ÷ warm index.
"""
import shutil, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
from harness import emit, ratio
from labtest import Jupyter
from lora_nb.runs import Run, list_runs
from lora_nb.lab.runview import RunIndex

def make(root:Path, n:int):
    for i in range(n):
        run = Run.create({'model': {'model_id': None}}, name=f'r{i}', root=root, base_model='embedded tiny base',
                         total_steps=60)
        run.update(status='running' if i % 100 == 0 else 'completed')
        run.log('metrics', *({'step': s, 'loss': 3 / s, 'learning_rate': 1e-3, 'eta_s': 60 - s} for s in range(1, 61)))

def best_ms(f, n=5):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1000)
    return round(min(ts), 1), round(statistics.median(ts), 1)

def main():
    for n in (1000, 5000):
        work = Path(tempfile.mkdtemp())
        root = work/'runs'
        make(root, n)
        scan = best_ms(lambda: list_runs(root)[:50], 3)
        idx = RunIndex(root)
        t = time.perf_counter()
        idx.page()
        cold = round((time.perf_counter() - t) * 1000, 1)
        warm = best_ms(lambda: idx.page(0, 50))
        with Jupyter('server', work, env={'LORA_NB_RUNS': ''}) as j:
            j.request('GET', 'lora-nb/runs')                       # fills the server's index
            http = best_ms(lambda: j.request('GET', 'lora-nb/runs?limit=50'))
        emit(bench='runs_list', runs=n, list_runs_ms=scan[0], index_cold_ms=cold, index_warm_ms=warm[0],
             index_warm_median_ms=warm[1],
             http_warm_ms=http[0], http_warm_median_ms=http[1], speedup=ratio(scan[0], warm[0], 1))
        shutil.rmtree(work)

if __name__ == '__main__': main()
