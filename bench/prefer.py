"""The preference loop's costs: DPO (and KTO) step time ÷ the default SFT step time, and judge-vs-voter agreement
(hand-written).

Same model (the embedded base, fp32 on the CPU), same parent adapter (a short SFT run, r=16), the same 64 prompts
with answers of the same lengths, batch 8, 8 steps. SFT trains on prompt + chosen with its defaults (padding-free).
DPO reads prompt + chosen and prompt + rejected and, for the reference, runs the frozen copy of the parent adapter
(TRL's `ref`) on both unless `precompute_ref_log_probs` did that once before training. By default lora_nb runs each
pair as one packed row in which the rejected answer shares the prompt's states (`lora_nb.speed.share_prefixes`);
`dpo_padded` is TRL's own padded batch (`padding_free=False`). Every variant runs in ONE process, interleaved (a
fresh model for each run), so the ratios compare like with like on a noisy machine; the figure is the median of the
repeats. Step time = the trainer's own `train_runtime` ÷ steps; `whole` adds the one-off reference pass of the
precompute variant. `short` answers are the demo's (a few tokens after a longer prompt); `long` answers are 40-80
words, where the prompt is a small share and sharing it saves less.

Agreement: the scripted voter of `lora-nb demo --prefer` and a judge (`ModelJudge` on the embedded base model, asked
in both orders) on the same 16 pairs of sampled answers; the tiny model rarely answers in the judge's format, so the
invalid count is reported with it.
"""
import sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure

SETUP = r'''
import json, random
from lora_nb.demo import load_demo_data
train, _ = load_demo_data()
rng = random.Random(0)
recs = train[:64]
others = {r['output'] for r in train}
PAIRS = [{'prompt': r['instruction'], 'chosen': r['output'] + '.',
          'rejected': rng.choice(sorted(others - {r['output']})) + '.'} for r in recs]
'''

STEPS = SETUP + r'''
import statistics, sys, time, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit
import pydoc_data.topics as topics
import datasets; datasets.disable_progress_bars()
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.train import Session, TrainSettings, LoraSettings
from lora_nb.prefer import PreferenceSession, PreferenceSettings
parent, root, answers, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if answers == 'long':
    words = ' '.join(sorted(topics.topics.values())).split()
    long = lambda i: ' '.join(words[i * 97:i * 97 + 40 + i % 41])
    PAIRS = [{'prompt': p['prompt'], 'chosen': long(2 * i), 'rejected': long(2 * i + 1)} for i, p in enumerate(PAIRS)]
N = 8
def run(mode):
    lm = load_model(quantization='none', dtype='float32')
    ts = TrainSettings(max_steps=N, per_device_train_batch_size=8, warmup_steps=0, save_steps=1000, logging_steps=1,
                       padding_free=mode != 'dpo_padded')
    t0 = time.perf_counter()
    if mode == 'sft':
        data = prepare([{'instruction': p['prompt'], 'output': p['chosen']} for p in PAIRS], lm.tokenizer,
                       eval_size=0)
        s = Session(lm, data, LoraSettings(r=16, lora_alpha=32, lora_dropout=0.0), ts, root=root)
    else:
        method = 'kto' if mode == 'kto' else 'dpo'
        data = prepare(PAIRS, lm.tokenizer, format=method, eval_size=0)
        s = PreferenceSession(lm, data, parent, PreferenceSettings(method=method,
                              precompute_ref_log_probs=mode == 'dpo_precompute'), ts, root=root)
    s.start(background=False)
    wall = time.perf_counter() - t0
    assert s.status == 'completed', (mode, s.status, s.error)
    recs = s.run.read('metrics').records
    runtime = [r for r in recs if 'train_runtime' in r][-1]['train_runtime']
    return runtime / N, wall - runtime, s.run.info().get('shared_prefixes')
MODES = ('sft', 'dpo', 'dpo_padded', 'dpo_precompute', 'kto')
got = {m: [] for m in MODES}
for _ in range(repeats):
    for m in MODES: got[m].append(run(m))
med = {m: statistics.median(x[0] for x in v) for m, v in got.items()}
# the precompute's one-off reference pass: what its run spends outside training beyond what plain DPO's run does
once = statistics.median(x[1] for x in got['dpo_precompute']) - statistics.median(x[1] for x in got['dpo'])
emit(answers=answers, repeats=repeats, step_s={m: round(v, 4) for m, v in med.items()},
     shared_prefixes=got['dpo'][0][2], dpo_over_sft=round(med['dpo'] / med['sft'], 2),
     dpo_padded_over_sft=round(med['dpo_padded'] / med['sft'], 2),
     dpo_precompute_over_sft=round(med['dpo_precompute'] / med['sft'], 2),
     dpo_precompute_whole_over_sft=round((med['dpo_precompute'] + max(once, 0) / N) / med['sft'], 2),
     kto_over_sft=round(med['kto'] / med['sft'], 2), shared_speedup=round(med['dpo_padded'] / med['dpo'], 2))
'''

AGREE = SETUP + r'''
import sys, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit
from lora_nb.models import load_model
from lora_nb.adapters import load
from lora_nb.runs import Run
from lora_nb.votes import BlindTest
from lora_nb.judge import ModelJudge, judge_pairs, agreement, judge_tally
from lora_nb.prefer_demo import sample_pairs, vote_all
parent, root = sys.argv[1], sys.argv[2]
lm = load_model(quantization='none')
lm.model = load(lm.model, Run.open(parent, root).path, 'parent')
truth = {r['instruction']: r['output'] for r in recs}
cmp = sample_pairs(lm, [r['instruction'] for r in recs[:16]], seed=1)
run = Run.create({}, name='agree', root=root)
bt = BlindTest(cmp, 'sample_1', 'sample_2', run=run)
vote_all(bt, truth)
judge = ModelJudge(load_model(quantization='none'), max_new_tokens=12)
js = judge_pairs(judge, cmp, 'sample_1', 'sample_2', run=run)
a = agreement(js, run.read('votes').records)
emit(pairs=len(js), judge=judge.identity['model'], agree=a['agree'], compared=a['n'], invalid=a['invalid'],
     agreement=a['rate'], judge_tally=judge_tally(js, 'sample_1', 'sample_2'))
'''

PARENT = SETUP + r'''
import sys, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.train import Session, TrainSettings, LoraSettings
lm = load_model(quantization='none')
data = prepare([{'instruction': r['instruction'], 'output': r['output']} for r in train], lm.tokenizer, eval_size=0)
s = Session(lm, data, LoraSettings(r=16, lora_alpha=32, lora_dropout=0.0),
            TrainSettings(num_train_epochs=2, per_device_train_batch_size=16, learning_rate=2e-3, save_steps=1000),
            root=sys.argv[1])
s.start(background=False)
emit(parent=s.run.id, status=s.status)
'''

if __name__ == '__main__':
    quick = '--quick' in sys.argv
    root = tempfile.mkdtemp()
    parent = measure(PARENT, root)['parent']
    steps = {a: measure(STEPS, parent, root, a, 1 if quick else 3) for a in ('short',) + (() if quick else ('long',))}
    agree = None if quick else measure(AGREE, parent, root)
    emit(benchmark='prefer', **{f'{a}_answers': v for a, v in steps.items()}, judge_vs_voter=agree)
