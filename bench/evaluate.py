"""Issue 27 part 6: `evaluate` on 500 held-out examples, the base and 2 adapters, embedded model: one mixed batch per
chunk of prompts (all adapters stacked in each LoRA layer: `generation.stacked_lora`, evaluate's path) ÷ one
`generate` per model for the same chunks (the same code with mixed batches turned off), greedy; wall time, and
whether the answers and figures are the same. Fresh process per quantization (hand-written).

`python bench/evaluate.py [EXAMPLES] [MAX_NEW_TOKENS] [BATCH_SIZE]`
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

CHILD = r'''
import sys, time, tempfile
from lora_nb import generation
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.train import LoraSettings, Session, TrainSettings
from lora_nb.adapters import load as add_adapter
from lora_nb.demo import make_demo_records
from lora_nb.evaluation import evaluate
sys.path.insert(0, 'bench'); from harness import emit
q, n, new, bs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]); root = tempfile.mkdtemp()
recs = make_demo_records(n=400 + n, held_out=n, seed=1)
train, test = recs[:400], recs[400:]
data = prepare(train, load_model(quantization='none').tokenizer, eval_size=0)
runs = []
for lr in (1e-3, 3e-3):
    s = Session(load_model(quantization=q), data, LoraSettings(r=8),
                TrainSettings(max_steps=12, learning_rate=lr, save_steps=100), root=root)
    s.start().wait(); runs.append(s.run)
lm = load_model(quantization=q)
m = add_adapter(add_adapter(lm.model, runs[0].path, 'one'), runs[1].path, 'two')
mixable = generation._mixed_batch_ok
def run(mixed):
    generation._mixed_batch_ok = mixable if mixed else (lambda model: False)
    t = time.perf_counter()
    ev = evaluate(m, lm.tokenizer, test, ['exact_match'], max_new_tokens=new, batch_size=bs, save=False)
    return time.perf_counter() - t, ev
run(True); run(False)                                       # warm up
tm, ts = [], []
for _ in range(2):
    t, a = run(True); tm.append(t)
    t, b = run(False); ts.append(t)
same = sum(x['outputs'] == y['outputs'] for x, y in zip(a.rows, b.rows))
emit(mixed_s=min(tm), each_s=min(ts), same_answers=same,
     figures={c: round(a.figures[c]['exact_match']['value'], 3) for c in a.columns},
     figures_each={c: round(b.figures[c]['exact_match']['value'], 3) for c in b.columns})
'''

def main(n:int=500, new:int=8, bs:int=16):
    out = {}
    for q in ('none', '4bit'):
        r = measure(CHILD, q, n, new, bs)
        out[q] = dict(mixed_s=round(r['mixed_s'], 2), one_generate_per_model_s=round(r['each_s'], 2),
                      speedup=ratio(r['each_s'], r['mixed_s']), examples_with_same_answers=r['same_answers'],
                      exact_match=r['figures'], exact_match_one_per_model=r['figures_each'])
    emit(bench='evaluate', examples=n, columns=3, max_new_tokens=new, prompts_per_batch=bs, **out,
         target='speedup >= 1.5 (one batched pass per adapter set vs one generate per model)')

if __name__ == '__main__': main(*map(int, sys.argv[1:]))
