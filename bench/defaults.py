"""Issue 25, part 3: the defaults on the real SmolLM2-135M-Instruct, three small tasks, before and after (hand-written).

    python bench/defaults.py            # three tasks × (the old defaults, the chosen ones); about 20 minutes on 2 cores
    python bench/defaults.py --quick    # the embedded model, one task, a few examples: checks the bench runs

Each (task, settings) pair trains in a fresh process on the real weights (the Q4_1 GGUF, dequantized) with nothing set
but what the row names, then the base and the adapter answer the task's held-out questions in one batch (greedy):

- `identity`: 90 examples teach the name Quill and the maker Larkspur Labs, 10 more are general questions
  (`lora_nb/assets/identity`); 12 held-out paraphrases (right: the answer names Quill / Larkspur) and 6 general
  questions the base answers right (kept: the expected word, and neither name).
- `types`: name the Python type of a literal, one word (`int`, `tuple`, …): 100 training examples of the demo data,
  40 held-out ones; right: the answer is exactly the type.
- `format`: the same questions, answered as JSON `{"type": "<type>"}`: right when the answer is that JSON object
  (the format and the type), `valid` when it is any JSON object with a `type` key (the format alone).

Settings: `old` is the 7B-era pair lora_nb used before (learning rate 2e-4, one epoch); `chosen` leaves both unset, so
lora_nb chooses them from the model's and the data's size (`lora_nb.defaults`). Batch 4, rank 16 in both.
"""
import argparse, json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure

CHILD = r'''
import json, sys, tempfile, time, warnings
warnings.filterwarnings('ignore')
from importlib.resources import files
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.settings import TrainSettings
from lora_nb.train import Session
from lora_nb.generation import compare
from lora_nb.weights import smollm2_gguf
from lora_nb.demo import load_demo_data
task, which, quick = sys.argv[1], sys.argv[2], sys.argv[3] == '1'
lm = load_model(None if quick else str(smollm2_gguf()))

def types(fmt):
    train, test = load_demo_data()
    shape = (lambda t: json.dumps({'type': t})) if fmt else (lambda t: t)
    suffix = ' Answer as JSON: {"type": ...}.' if fmt else ' Answer with the type name only.'
    tr = [{'instruction': r['instruction'] + suffix, 'output': shape(r['output'])} for r in train[:100]]
    te = [(r['instruction'] + suffix, r['output']) for r in test[:40]]
    return tr, te

def judge(task, answer, want):
    a = answer.strip()
    if task == 'types': return {'right': a == want}
    try: obj = json.loads(a)
    except ValueError: obj = None
    ok = isinstance(obj, dict) and 'type' in obj
    return {'right': ok and obj['type'] == want, 'valid': ok}

if task == 'identity':
    ident = files('lora_nb')/'assets'/'identity'
    held = json.loads((ident/'heldout.json').read_text())
    records = str(ident/'train.jsonl')
    qs = held['name'] + held['maker'] + [q for q, _ in held['general']]
    def score(outs):
        words = [['quill']] * 8 + [['larkspur']] * 4 + [w for _, w in held['general']]
        hits = [any(w in o.lower() for w in ws) for o, ws in zip(outs, words)]
        hits[12:] = [h and not any(n in o.lower() for n in ('quill', 'larkspur')) for h, o in zip(hits[12:], outs[12:])]
        return {'identity': sum(hits[:12]) / 12, 'general': sum(hits[12:]) / len(held['general'])}
else:
    records, te = types(task == 'format')
    if quick: records, te = records[:24], te[:8]
    qs = [q for q, _ in te]
    def score(outs):
        js = [judge(task, o, w) for o, (_, w) in zip(outs, te)]
        return {k: sum(j[k] for j in js) / len(js) for k in js[0]}

data = prepare(records, lm.tokenizer)
train = TrainSettings(save_steps=10_000, **({'learning_rate': 2e-4, 'num_train_epochs': 1} if which == 'old' else {}))
if quick: train = TrainSettings(save_steps=10_000, max_steps=4)
t0 = time.time()
s = Session(lm, data, train=train, root=tempfile.mkdtemp()).start()
s.wait()
secs = time.time() - t0
c = compare(lm.model, lm.tokenizer, qs, max_new_tokens=32)
base, tuned = c.columns
logs = [e.data for e in s.events if e.kind == 'log' and 'loss' in e.data]
evals = [e.data['eval_loss'] for e in s.events if e.kind == 'eval']
print(json.dumps(dict(task=task, settings=which, status=s.status, steps=s.trainer.state.global_step,
                      learning_rate=s.train.learning_rate, epochs=s.train.num_train_epochs, train_s=round(secs),
                      loss=[round(logs[0]['loss'], 3), round(logs[-1]['loss'], 3)],
                      eval_loss=[round(e, 3) for e in evals[-1:]], best=s.best and s.best['step'], notes=s.notes,
                      before=score([o[base] for o in c.outputs]), after=score([o[tuned] for o in c.outputs]))))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--tasks', default='identity,types,format')
    a = ap.parse_args()
    tasks = ['types'] if a.quick else a.tasks.split(',')
    rows = [measure(CHILD, t, w, int(a.quick), timeout=3600) for t in tasks for w in ('old', 'chosen')]
    for r in rows: print(json.dumps(r), file=sys.stderr)
    emit(bench='defaults', model='embedded' if a.quick else 'SmolLM2-135M-Instruct',
         results={f"{r['task']}/{r['settings']}": {k: r[k] for k in ('steps', 'learning_rate', 'epochs', 'train_s',
                                                                      'loss', 'before', 'after')} for r in rows})


if __name__ == '__main__': main()
