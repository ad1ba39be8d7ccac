"""The preference loop's costs: DPO (and KTO) step time ÷ SFT step time, and judge-vs-voter agreement (hand-written).

Same model (the embedded base, fp32 on the CPU), same parent adapter (a short SFT run, r=16), the same 64 prompts
with answers of the same lengths, batch 8, 8 steps, each trainer in a fresh process. SFT trains on prompt + chosen;
DPO reads prompt + chosen and prompt + rejected and, for the reference, runs the frozen copy of the parent adapter
(TRL's `ref`) on both unless `precompute_ref_log_probs` did that once before training (its one-off cost is reported
apart). Step time = the trainer's own `train_runtime` ÷ steps.

Agreement: the scripted voter of `lora-nb demo --prefer` and a judge (`ModelJudge` on the embedded base model, asked
in both orders) on the same 16 pairs of sampled answers; the tiny model rarely answers in the judge's format, so the
invalid count is reported with it.
"""
import sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

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

CHILD = SETUP + r'''
import sys, time, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.train import Session, TrainSettings, LoraSettings
from lora_nb.prefer import PreferenceSession, PreferenceSettings
mode, parent, root = sys.argv[1], sys.argv[2], sys.argv[3]
lm = load_model(quantization='none')
ts = TrainSettings(max_steps=8, per_device_train_batch_size=8, warmup_steps=0, save_steps=1000, logging_steps=1,
                   padding_free=False)
t0 = time.perf_counter()
if mode == 'sft':
    from lora_nb.adapters import load
    data = prepare([{'instruction': p['prompt'], 'output': p['chosen']} for p in PAIRS], lm.tokenizer, eval_size=0)
    s = Session(lm, data, LoraSettings(r=16, lora_alpha=32, lora_dropout=0.0), ts, root=root)
else:
    method = 'kto' if mode == 'kto' else 'dpo'
    data = prepare(PAIRS, lm.tokenizer, format=method, eval_size=0)
    s = PreferenceSession(lm, data, parent, PreferenceSettings(method=method,
                          precompute_ref_log_probs=mode == 'dpo_precompute'), ts, root=root)
s.start(background=False)
wall = time.perf_counter() - t0
recs = s.run.read('metrics').records
runtime = [r for r in recs if 'train_runtime' in r][-1]['train_runtime']
emit(mode=mode, status=s.status, step_s=runtime / 8, runtime=runtime, wall=wall)
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
    root = tempfile.mkdtemp()
    parent = measure(PARENT, root)['parent']
    got = {m: measure(CHILD, m, parent, root) for m in ('sft', 'dpo', 'dpo_precompute', 'kto')}
    agree = measure(AGREE, parent, root)
    sft = got['sft']['step_s']
    emit(benchmark='prefer', sft_step_s=round(sft, 3), dpo_step_s=round(got['dpo']['step_s'], 3),
         dpo_precompute_step_s=round(got['dpo_precompute']['step_s'], 3), kto_step_s=round(got['kto']['step_s'], 3),
         dpo_over_sft=ratio(got['dpo']['step_s'], sft),
         dpo_precompute_over_sft=ratio(got['dpo_precompute']['step_s'], sft),
         kto_over_sft=ratio(got['kto']['step_s'], sft),
         precompute_one_off_s=round(got['dpo_precompute']['wall'] - got['dpo_precompute']['runtime']
                                    - (got['dpo']['wall'] - got['dpo']['runtime']), 2),
         judge_vs_voter=agree)
