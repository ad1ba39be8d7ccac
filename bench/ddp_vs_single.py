"""Two processes (DDP over gloo, `accelerate launch`) ÷ one process: training tokens/s on this machine's CPU cores.

The same `lora-nb train` config on the embedded model (fp32, r=16, padding-free, 64 variable-length texts, 16 steps),
at the same global batch of 8: one process with per_device_train_batch_size=8, and two processes with 4 each
(examples/accelerate/cpu_ddp.yaml). tokens/s is the trainer's own count (summed over ranks) over the training time,
from the last metrics line of the run folder. For context, the single process also runs with one OpenMP thread,
which is what each of the two DDP processes gets (accelerate sets OMP_NUM_THREADS = cores ÷ processes).

Why the ratio is not 2 here: data parallelism adds devices, and on a 2-core machine there are none to add. The two
processes share the same two cores that the single process already used with its two threads; on top of that each
step all-reduces the LoRA gradients over gloo, each process runs its own Python and dispatcher overhead, each
forward sees half the batch (smaller, less efficient matmuls), and the model is held twice. A ratio near or below 1
is the honest outcome on this machine; on several GPUs the same command scales with the number of devices.
The machine is noisy (and shared): compare within one run. The final losses are printed to show the two set-ups
train the same model.
"""
import json, os, subprocess, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import ROOT, emit, ratio

BIN = Path(sys.executable).parent
CONFIG = dict(name='bench', runs_root='runs', data=dict(source='texts.jsonl', eval_size=0, max_length=256),
              lora=dict(r=16, lora_dropout=0.0),
              train=dict(max_steps=16, learning_rate=2e-4, warmup_steps=0, save_steps=1000, logging_steps=1))

def _texts() -> list[dict]:
    import pydoc_data.topics as t
    return [{'text': v[:200 + 37 * (i % 9)]} for i, v in enumerate(sorted(t.topics.values()))][:64]

def _run(folder:Path, procs:int, threads:int|None, batch:int) -> dict:
    "Train once; the final tokens/s and loss from the run folder."
    root = folder/f'runs-{procs}-{threads}-{len(list(folder.glob("runs-*")))}'
    args = ['train', str(folder/'run.yaml'), '--set', f'runs_root={root}', '--set',
            f'per_device_train_batch_size={batch}']
    cmd = ([str(BIN/'accelerate'), 'launch', '--config_file', str(ROOT/'examples'/'accelerate'/'cpu_ddp.yaml'), '-m',
            'lora_nb'] if procs > 1
           else [str(BIN/'lora-nb')]) + args
    env = {**os.environ, **({'OMP_NUM_THREADS': str(threads)} if threads else {})}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env, cwd=folder)
    if r.returncode: raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    run = next(root.iterdir())
    recs = [json.loads(l) for l in (run/'metrics.jsonl').read_text().splitlines() if l.strip()]
    last = [x for x in recs if 'loss' in x][-1]
    return dict(tokens_per_s=last['tokens_per_s'], loss=last['loss'])

def main():
    folder = Path(tempfile.mkdtemp())
    (folder/'texts.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in _texts()))
    import yaml
    (folder/'run.yaml').write_text(yaml.safe_dump(CONFIG))
    setups = {'one_process': (1, None, 8), 'one_process_1_thread': (1, 1, 8), 'two_processes': (2, None, 4)}
    res = {k: [] for k in setups}
    for order in (list(setups), list(reversed(setups))):
        for k in order: res[k].append(_run(folder, *setups[k]))
    best = {k: max(r['tokens_per_s'] for r in v) for k, v in res.items()}
    emit(bench='ddp_vs_single', cores=os.cpu_count(), global_batch=8, steps=CONFIG['train']['max_steps'],
         tokens_per_s={k: round(v, 1) for k, v in best.items()},
         ratio_two_over_one=ratio(best['two_processes'], best['one_process']),
         ratio_two_over_one_1_thread=ratio(best['two_processes'], best['one_process_1_thread']),
         final_loss={k: round(v[0]['loss'], 5) for k, v in res.items()})

if __name__ == '__main__': main()
