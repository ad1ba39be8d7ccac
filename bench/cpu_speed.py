"""Issue 18: LoRA training speed on this CPU at real model sizes, against the machine's own matmul peak and against
TRL's `SFTTrainer` + PEFT with their defaults, side by side in one run (hand-written).

    python bench/cpu_speed.py            # SmolLM2-135M and Qwen2.5-0.5B shapes (minutes)
    python bench/cpu_speed.py --quick    # a small shape, a few steps: for `make bench` and CI
    python bench/cpu_speed.py --only smollm2 --steps 2 --batch 2 --reps 1   # the real model, checked briefly

Models: random weights in the shapes of SmolLM2-135M (hidden 576, MLP 1536, 30 layers, 9/3 heads) and Qwen2.5-0.5B
(896, 4864, 24 layers, 14/2 heads, q/k/v bias), with the embedded tokenizer's 4,096-token vocabulary and with the
real vocabulary size (49,152 and 151,936: the output layer then weighs in). Data: instruction/answer pairs cut from
Python's own documentation (pydoc topics, offline), ~150 tokens each on average, through the chat template.
`smollm2`: the real SmolLM2-135M-Instruct (vocabulary 49,152) from the Q4_1 GGUF that `lora_nb.weights.smollm2_gguf`
finds, read by transformers (`gguf_file=`, dequantized) and saved once as a bfloat16 folder that every child loads.

Every (variant, repeat) runs in a fresh process; repeats are interleaved (A B C A B C …) so a neighbour's load on the
shared machine falls on all variants alike; the figures are medians over repeats. Throughput is steady-state: non-pad
tokens and wall time between the first logged step and the last. Model FLOP/s = 4N × tokens/s (N: base parameters;
LoRA's frozen weights get no gradient). TRL's defaults turn gradient checkpointing on, which recomputes the forward:
its hardware work is 6N a token, but the model FLOP/s reported for it stay 4N (useful work, comparable); `gc` says so.
The matmul peak (best of large GEMMs on torch's threads, fp32 and bf16) is measured between the children (the best
value seen is the reference) and again inside each child just before it trains (the same neighbours' load).
Peak memory: VmHWM − anonymous memory after imports, against `estimate`. A Session computes the loss by chunks of
tokens where a step's logits are large (`loss_chunk_tokens` in run.json, 0: the model's own loss); -fullloss: the
model's own loss over the whole float32 logits, for the memory (and speed) side by side: `chunked_loss_peak_mib_saved`.
First step: seconds from Start (`Session.start`; for TRL the trainer's construction, which prepares the data) to the
first logged step: preparing, compiling, the first step itself.
Variants: session-{fp32,bf16,4bit} through `Session` (one-pass LoRA layers, packed attention, no dropout); -sdpa:
SDPA over the whole row under a mask instead of packed attention; -peft: PEFT's own LoRA forward instead of the
one-pass one; -drop: LoraSettings' default dropout 0.05; -compile: the MLPs and norms compiled (`LORA_NB_COMPILE=1`;
a Session compiles by itself only runs expected to last minutes); trl-*: TRL's SFTTrainer + PEFT with their defaults.
Time estimate: every Session run records its throughput in a cache of this bench (one per model and variant, as a user
who trains the same way again; not the user's cache); from the second repeat on, a run's `run_estimate` made before
Start is compared with its wall time.
"""
import argparse, json, os, statistics, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

SHAPES = {   # name: (model_type, config fields)
    '135m': ('llama', dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                           num_key_value_heads=3, max_position_embeddings=2048, tie_word_embeddings=True)),
    '0.5b': ('qwen2', dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                           num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True)),
    'quick': ('llama', dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                            num_key_value_heads=2, max_position_embeddings=1024)),
}
REAL = 'smollm2'   # the real SmolLM2-135M-Instruct, from its GGUF
REAL_VOCAB = {'135m': 49152, '0.5b': 151936}
PAIRS = {'packed_attention_over_sdpa': ('session-bf16', 'session-bf16-sdpa'),
         'compiled_over_not': ('session-bf16-compile', 'session-bf16'),
         'one_pass_lora_over_peft_forward': ('session-bf16', 'session-bf16-peft'),
         'dropout_0.05_over_none': ('session-bf16-drop', 'session-bf16'),
         'bf16_over_fp32': ('session-bf16', 'session-fp32'),
         'chunked_loss_over_full_logits': ('session-bf16', 'session-bf16-fullloss')}

CHILD = r'''
import sys, json, time, tempfile, warnings, os
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit, status
import torch, transformers, peft, trl, datasets, lora_nb.train, lora_nb.memory   # imported before the baseline
base_rss = status('RssAnon')
folder, variant, steps, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import pydoc_data.topics as T
topics = sorted(T.topics.items())
rows = [dict(instruction=f"Explain the Python topic '{k}' in the style of the reference manual.",
             output=' '.join(v.split())[:180 + 97 * (i % 13)]) for i, (k, v) in enumerate(topics)]
need = steps * batch + batch
rows = (rows * (need // len(rows) + 1))[:need]
from lora_nb.models import load_model
from lora_nb.memory import estimate
from lora_nb import speed
kind, prec = variant.split('-')[0], variant.split('-')[1]
quant = '4bit' if prec == '4bit' else 'none'
kw = dict(quantization=quant) | ({} if quant != 'none' else {'dtype': {'fp32': 'float32', 'bf16': 'bfloat16'}[prec]})
if quant == '4bit' and 'bf16c' in variant: kw['bnb_4bit_compute_dtype'] = 'bfloat16'
lm = load_model(folder, **kw)
n = speed.n_params(lm.model)
marks = []
peaks = {d: speed.matmul_peak(d, n=2048, reps=5) for d in ('float32', 'bfloat16')}   # under the load of this run
if kind == 'session':
    from lora_nb.data import prepare
    from lora_nb.train import LoraSettings, Session, TrainSettings
    import lora_nb.train as TR
    if 'sdpa' in variant: TR.use_packed_attention = lambda m, on=True: False      # the plain SDPA path
    if 'peft' in variant: TR.use_one_pass_lora = lambda m, on=True: 0            # PEFT's own LoRA forward
    if 'fullloss' in variant: TR.use_chunked_loss = lambda m, *a, **k: 0          # the model's own loss
    os.environ['LORA_NB_COMPILE'] = '1' if 'compile' in variant else '0'          # short runs: forced either way
    data = prepare(rows, lm.tokenizer, eval_size=0, max_length=1024)
    train = TrainSettings(max_steps=steps, per_device_train_batch_size=batch, warmup_steps=0, save_steps=10**6,
                          learning_rate=2e-4, logging_steps=1)
    drop = 0.05 if 'drop' in variant else 0.0   # -drop: LoraSettings' default dropout
    s = Session(lm, data, LoraSettings(r=16, lora_alpha=32, lora_dropout=drop), train, root=tempfile.mkdtemp())
    est = speed.run_estimate(lm, data, train)
    def mark(e):
        if e.kind == 'log' and 'loss' in e.data:
            marks.append((time.perf_counter(), e.data.get('num_input_tokens_seen'), e.data['loss']))
    s.add_listener(mark)
    t0 = time.perf_counter(); s.start(background=False); wall = time.perf_counter() - t0
    assert s.status == 'completed', (s.status, s.error)
    info = s.run.info()
    longest = max(len(e.input_ids) for e in data.train)
    tokens_per_step = [sum(len(e.input_ids) for e in data.train[i:i + batch]) for i in range(0, len(data.train), batch)]
    gc_on, extra = False, dict(estimate_s=est.seconds, estimate_basis=est.basis, wall_s=wall,
                               loss_chunk_tokens=info.get('loss_chunk_tokens'), compiled=info.get('compiled'))
else:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer
    from transformers import TrainerCallback
    class Mark(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **k):
            if logs and 'loss' in logs: marks.append((time.perf_counter(), state.num_input_tokens_seen, logs['loss']))
    ds = Dataset.from_list([{'prompt': [{'role': 'user', 'content': r['instruction']}],
                             'completion': [{'role': 'assistant', 'content': r['output']}]} for r in rows])
    cfg = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=batch, logging_steps=1,
                    save_strategy='no', report_to='none', disable_tqdm=True, use_cpu=True, learning_rate=2e-4,
                    include_num_input_tokens_seen='non_padding', max_length=1024)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules='all-linear', task_type='CAUSAL_LM')
    t0 = time.perf_counter()   # Start: the trainer prepares the data as it is built
    tr = SFTTrainer(model=lm.model, args=cfg, train_dataset=ds, processing_class=lm.tokenizer, peft_config=lora,
                    callbacks=[Mark()])
    tr.train()
    gc_on, extra = bool(cfg.gradient_checkpointing), dict(bf16_autocast=bool(cfg.bf16))
    tokens_per_step = [max(1, marks[i][1] - (marks[i - 1][1] if i else 0)) for i in range(len(marks))]
peak = status('VmHWM') - status('RssFile') - base_rss
(t1, k1, _), (t2, k2, loss) = marks[0], marks[-1]
tps = (k2 - k1) / (t2 - t1)
e = estimate(folder, quantization=quant, dtype='bfloat16' if prec == 'bf16' else 'float32', r=16,
             per_device_train_batch_size=1, max_length=max(tokens_per_step), gradient_checkpointing=gc_on)
emit(tokens_per_s=tps, model_flops_per_s=4 * n * tps, peaks=peaks, n_params=n, gc=gc_on, final_loss=loss,
     first_loss=marks[0][2], peak_bytes=peak, estimate_bytes=e.total, tokens=k2 - k1, first_step_s=t1 - t0, **extra)
'''

GEN = r'''
import sys, time, statistics, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit
import torch
from peft import LoraConfig, get_peft_model
from lora_nb.models import load_model
from lora_nb.generation import compare, _encode, BASE
from lora_nb.chat import reply
folder, new = sys.argv[1], int(sys.argv[2])
lm = load_model(folder, quantization='none', dtype='bfloat16')
tok = lm.tokenizer
m = get_peft_model(lm.model, LoraConfig(r=16, lora_alpha=32, target_modules='all-linear', init_lora_weights=False),
                   adapter_name='one')
m.eval()
prompts = [f"Explain the Python statement number {i} in one paragraph." for i in range(8)]
gen = dict(max_new_tokens=new, do_sample=False, pad_token_id=tok.pad_token_id, use_cache=True)
def plain_pair():    # the base, then the adapter: two generate calls
    enc = _encode(tok, prompts, True)
    with torch.no_grad():
        with m.disable_adapter(): m.generate(**enc, **gen)
        m.set_adapter('one'); m.generate(**enc, **gen)
def mixed():         # Compare: base and adapter in one batch
    compare(m, tok, prompts, adapters=['one'], max_new_tokens=new)
msgs = [{'role': 'user', 'content': prompts[0]}]
def plain_one():
    enc = _encode(tok, prompts[:1], True)
    with torch.no_grad(): m.generate(**enc, **gen)
def chat():          # Chat: one streamed reply from the adapter
    reply(m, tok, msgs, adapter='one', max_new_tokens=new, do_sample=False)
fns = dict(plain_pair=plain_pair, compare_mixed=mixed, plain_one=plain_one, chat_streamed=chat)
for f in fns.values(): f()
ts = {k: [] for k in fns}
for _ in range(3):
    for k, f in fns.items():
        t = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t)
med = {k: statistics.median(v) for k, v in ts.items()}
tps = dict(plain_pair=16 * new / med['plain_pair'], compare_mixed=16 * new / med['compare_mixed'],
           plain_one=new / med['plain_one'], chat_streamed=new / med['chat_streamed'])
emit(seconds=med, tokens_per_s=tps)
'''

PEAK = r'''
import sys; sys.path.insert(0, 'bench'); from harness import emit
from lora_nb.speed import matmul_peak
emit(float32=matmul_peak('float32', n=2048, reps=5), bfloat16=matmul_peak('bfloat16', n=2048, reps=5))
'''

def make_models(root:Path, names:list[str]) -> dict:
    from lora_nb.models import save_random_model, EMBEDDED_MODEL
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    ids = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    out = {}
    for name in names:
        if name == REAL:
            out[name] = real_model(root/name)
            continue
        shape, vocab = name.split('@') if '@' in name else (name, None)
        mt, cfg = SHAPES[shape]
        cfg = dict(cfg, vocab_size=int(vocab) if vocab else len(tok), **ids)
        out[name] = save_random_model(root/name.replace('@', '-v'), model_type=mt, dtype=__import__('torch').bfloat16,
                                      **cfg)
    return out

def real_model(dest:Path) -> Path:
    "The real SmolLM2-135M-Instruct from its GGUF (dequantized by transformers), saved as a bfloat16 folder."
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from lora_nb.weights import smollm2_gguf
    g = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
    m = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.bfloat16)
    cfg = m.config.to_dict()
    cfg.pop('quantization_config', None)   # a GGUF-read model refuses save_pretrained (hazard 27): rebuilt plain
    fresh = AutoModelForCausalLM.from_config(type(m.config).from_dict(cfg), dtype=torch.bfloat16)
    fresh.load_state_dict(m.state_dict())
    fresh.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest

def med(xs): return statistics.median(xs)

def summarise(name, variant, rs):
    s = dict(tokens_per_s=round(med([r['tokens_per_s'] for r in rs]), 1),
             model_gflops_per_s=round(med([r['model_flops_per_s'] for r in rs]) / 1e9, 1),
             gc=rs[0]['gc'], final_loss=[round(r['final_loss'], 4) for r in rs],
             first_loss=round(rs[0]['first_loss'], 4), n_params_m=round(rs[0]['n_params'] / 1e6, 1),
             peak_mib=round(med([r['peak_bytes'] for r in rs]) / 2**20),
             estimate_mib=round(rs[0]['estimate_bytes'] / 2**20),
             estimate_over_measured_memory=ratio(rs[0]['estimate_bytes'], med([r['peak_bytes'] for r in rs])))
    if 'first_step_s' in rs[0]: s['first_step_s'] = [round(r['first_step_s'], 1) for r in rs]
    if rs[0].get('loss_chunk_tokens') is not None: s['loss_chunk_tokens'] = rs[0]['loss_chunk_tokens']
    if rs[0].get('compiled') is not None: s['compiled_modules'] = rs[0]['compiled']
    # runs whose estimate came from a throughput measured here before (not from the matmul peak alone)
    timed = [r for r in rs if 'wall_s' in r and 'matmul peak' not in r['estimate_basis']]
    if timed: s['time_estimate_over_actual'] = [ratio(r['estimate_s'], r['wall_s']) for r in timed]
    return s

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true', help='a small shape, a few steps (make bench, CI)')
    ap.add_argument('--reps', type=int, default=None)
    ap.add_argument('--steps', type=int, default=None, help="steps of every run (a brief check: 2)")
    ap.add_argument('--batch', type=int, default=None, help="per_device_train_batch_size of every run")
    ap.add_argument('--only', default=None, help='comma-separated model names to run (e.g. 135m,0.5b@151936)')
    ap.add_argument('--summarise', default=None, help="report from the progress lines (stderr) of a cut-short run")
    ap.add_argument('--no-generation', action='store_true', help="skip the generation figures (minutes on smollm2)")
    a = ap.parse_args()
    if a.summarise:
        lines = [json.loads(l) for l in Path(a.summarise).read_text().splitlines() if l.startswith('{')]
        results, peaks, generation = {}, [l['peak'] for l in lines if 'peak' in l], None
        for l in lines:
            if 'progress' in l: results.setdefault(l['progress'], {}).setdefault(l['variant'], []).append(l)
        if not peaks: peaks = [measure(PEAK) for _ in range(3)]   # a run from before peaks were logged: measured now
        return report(a, results, peaks, generation, reps=max(l.get('rep', 0) for l in lines) + 1)
    if a.quick:
        plan = {'quick': (['session-fp32', 'session-bf16', 'trl-fp32'], 3, 4)}
    else:   # model: (variants, steps, batch)
        plan = {'135m': (['session-bf16', 'session-bf16-compile', 'session-fp32', 'trl-bf16', 'session-bf16-sdpa',
                          'session-bf16-peft', 'session-bf16-drop', 'session-4bit', 'trl-fp32'], 3, 8),
                '135m@49152': (['session-bf16', 'session-bf16-compile', 'trl-bf16'], 3, 8),
                REAL: (['session-bf16', 'session-bf16-compile', 'session-bf16-fullloss', 'trl-bf16'], 3, 8),
                '0.5b': (['session-bf16', 'session-bf16-compile', 'trl-bf16'], 3, 8),
                '0.5b@151936': (['session-bf16', 'session-bf16-compile', 'session-bf16-fullloss'], 3, 8)}
    if a.only: plan = {k: v for k, v in plan.items() if k in a.only.split(',')}
    plan = {k: (vs, a.steps or st, a.batch or b) for k, (vs, st, b) in plan.items()}
    reps = a.reps or 2
    cache = tempfile.mkdtemp(prefix='lora_nb_bench_cache_')
    peaks, results = [], {}
    with tempfile.TemporaryDirectory() as d:
        folders = make_models(Path(d), list(plan))
        for rep in range(reps):
            peaks.append(measure(PEAK))
            print(json.dumps({'peak': peaks[-1]}), file=sys.stderr, flush=True)
            for name, (variants, steps, batch) in plan.items():
                for v in variants:
                    if rep and v.startswith('trl'): continue   # TRL once: it is the slow one
                    env = {'LORA_NB_CACHE': os.path.join(cache, name, v)}   # each variant its own throughput record
                    r = measure(CHILD, folders[name], v, steps, batch, env=env, timeout=3600)
                    results.setdefault(name, {}).setdefault(v, []).append(r)
                    print(json.dumps({'progress': name, 'variant': v, 'rep': rep, **r}), file=sys.stderr, flush=True)
        gen_model = next(n for n in plan if '@' not in n)
        g = None if a.no_generation else measure(GEN, folders[gen_model], 16 if a.quick else 32)
    if g is None: return report(a, results, peaks, None, reps)
    gt = g['tokens_per_s']
    generation = dict(model=gen_model, tokens_per_s={k: round(v, 1) for k, v in gt.items()},
                      compare_mixed_over_plain_pair=ratio(gt['compare_mixed'], gt['plain_pair']),
                      chat_streamed_over_plain_one=ratio(gt['chat_streamed'], gt['plain_one']),
                      note='greedy, bf16; plain_pair = base then adapter in two generate calls over 8 prompts; '
                           'compare_mixed = the same 16 answers in one mixed batch; chat = one streamed reply')
    report(a, results, peaks, generation, reps)

def report(a, results, peaks, generation, reps):
    "Print the figures: medians over repeats, ratios, shares of the matmul peak."
    peak = {k: max(p[k] for p in peaks) for k in ('float32', 'bfloat16')}
    out = {}
    for name, vs in results.items():
        rows = {v: summarise(name, v, rs) for v, rs in vs.items()}
        for v, s in rows.items():
            dt = 'bfloat16' if ('bf16' in v or v.startswith('trl')) else 'float32'
            s['share_of_matmul_peak'] = round(s['model_gflops_per_s'] * 1e9 / peak[dt], 3)
            own = [r['model_flops_per_s'] / r['peaks'][dt] for r in vs[v] if 'peaks' in r]
            if own: s['share_of_peak_measured_in_the_same_process'] = round(med(own), 3)
            f32 = [r['model_flops_per_s'] / r['peaks']['float32'] for r in vs[v] if 'peaks' in r]
            if f32 and dt == 'bfloat16': s['share_of_fp32_peak_measured_in_the_same_process'] = round(med(f32), 3)
        best = max((v for v in rows if v.startswith('session')), key=lambda v: rows[v]['tokens_per_s'])
        trl = [v for v in rows if v.startswith('trl')]
        ratios = {f'{best}_over_{t}': ratio(rows[best]['tokens_per_s'], rows[t]['tokens_per_s']) for t in trl}
        for key, (x, y) in PAIRS.items():   # what each change gives, where both variants ran
            if x in rows and y in rows: ratios[key] = ratio(rows[x]['tokens_per_s'], rows[y]['tokens_per_s'])
        out[name] = dict(variants=rows, fastest_session=best, ratios=ratios)
        if 'session-bf16' in rows and 'session-bf16-fullloss' in rows:   # the loss's memory, with and without chunks
            out[name]['chunked_loss_peak_mib_saved'] = (rows['session-bf16-fullloss']['peak_mib']
                                                        - rows['session-bf16']['peak_mib'])
    te = [x for o in out.values() for s in o['variants'].values() for x in s.get('time_estimate_over_actual', [])]
    emit(bench='cpu_speed', quick=a.quick, reps=reps, threads=__import__('torch').get_num_threads(),
         matmul_peak_gflops={k: round(v / 1e9, 1) for k, v in peak.items()},
         matmul_peak_gflops_each_rep=[{k: round(v / 1e9, 1) for k, v in p.items()} for p in peaks],
         models=out, generation=generation, time_estimate_over_actual_all=te,
         time_estimate_within_25pct=all(0.75 <= x <= 1.25 for x in te) if te else None,
         flops_convention='model FLOP/s = 4N x non-pad tokens/s for every variant; gc=True means the trainer '
                          'also recomputed the forward (6N of hardware work)',
         target='135m: fastest session >= 35% of bf16 matmul peak; session / TRL defaults >= 2.0; '
                'time estimate / actual within 0.75..1.25; smollm2 (real): >= 35% of the bf16 peak measured in the '
                'same process, >= 2.5x TRL defaults, first step <= 15 s')

if __name__ == '__main__': main()
