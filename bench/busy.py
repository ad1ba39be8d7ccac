"""Issue 25, part 8: training on a busy machine, with and without threads sized from the free share (hand-written).

    python bench/busy.py              # the real SmolLM2-135M-Instruct, 14 steps a run, 2 repeats (about 10 minutes)
    python bench/busy.py --quick      # the embedded model: checks the bench runs

Each run trains in a fresh process (`Session`, the defaults but `max_steps`, batch 4 of the identity examples) and
reports steady tokens/s: non-pad tokens over wall time from the second logged step to the last. Three conditions,
interleaved per repeat so a neighbour's load falls on all alike:

- `alone`: nothing else running (but this bench's parent, idle);
- `beside`: one other CPU-heavy process running beside it (torch matmuls of 512 on as many threads as cores, the
  shape of another training), threads sized by lora_nb from the free share (the default);
- `beside-pinned`: the same neighbour, the threads pinned to the core count (`LORA_NB_THREADS`), as before.

Slowdown = alone ÷ beside. A fair share of two cores beside one other process is 2×; the goal is ≤ 2.5×.
"""
import argparse, os, statistics, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

CHILD = r'''
import sys, json, tempfile, warnings
warnings.filterwarnings('ignore')
from importlib.resources import files
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.settings import TrainSettings
from lora_nb.train import Session
from lora_nb.weights import smollm2_gguf
quick, steps = sys.argv[1] == '1', int(sys.argv[2])
lm = load_model(None if quick else str(smollm2_gguf()))
data = prepare(str(files('lora_nb')/'assets'/'identity'/'train.jsonl'), lm.tokenizer)
s = Session(lm, data, train=TrainSettings(max_steps=steps, save_steps=1000, eval_steps=1000),
            root=tempfile.mkdtemp()).start()
s.wait()
recs = [json.loads(l) for l in (s.run.path/'metrics.jsonl').read_text().splitlines()]
logs = [r for r in recs if 'loss' in r and 'num_input_tokens_seen' in r]
a, b = logs[1], logs[-1]
print(json.dumps(dict(tokens_per_s=(b['num_input_tokens_seen'] - a['num_input_tokens_seen']) / (b['time'] - a['time']),
                      threads=sorted({r.get('threads') for r in logs}), others=[r.get('cpu_others') for r in logs][-1],
                      status=s.status)))
'''

NEIGHBOUR = r'''
import time, torch
torch.set_num_threads(torch.get_num_threads())
a = torch.randn(512, 512)
end = time.time() + 3600
while time.time() < end: a = torch.tanh(a @ a.T / 512)
'''


def run(quick:bool, steps:int, neighbour:bool, pinned:bool) -> dict:
    "One training run in a fresh process, with or without a neighbour; its figures."
    env = {'LORA_NB_THREADS': str(os.cpu_count())} if pinned else {}
    env.pop('OMP_NUM_THREADS', None)
    n = subprocess.Popen([sys.executable, '-c', NEIGHBOUR]) if neighbour else None
    try:
        if n: time.sleep(2)
        return measure(CHILD, int(quick), steps, env=env)
    finally:
        if n: n.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--steps', type=int, default=14)
    ap.add_argument('--reps', type=int, default=2)
    a = ap.parse_args()
    steps, reps = (6, 1) if a.quick else (a.steps, a.reps)
    conds = {'alone': (False, False), 'beside': (True, False), 'beside-pinned': (True, True)}
    got = {k: [] for k in conds}
    for _ in range(reps):
        for k, (nb, pin) in conds.items(): got[k].append(run(a.quick, steps, nb, pin))
    tps = {k: statistics.median(r['tokens_per_s'] for r in v) for k, v in got.items()}
    emit(bench='busy', model='embedded' if a.quick else 'SmolLM2-135M-Instruct', steps=steps, reps=reps,
         cores=os.cpu_count(), tokens_per_s={k: round(v, 1) for k, v in tps.items()},
         threads={k: v[-1]['threads'] for k, v in got.items()}, others={k: v[-1]['others'] for k, v in got.items()},
         slowdown_beside=ratio(tps['alone'], tps['beside']),
         slowdown_beside_pinned=ratio(tps['alone'], tps['beside-pinned']),
         fair_share_over_pinned=ratio(tps['beside'], tps['beside-pinned']))


if __name__ == '__main__': main()
