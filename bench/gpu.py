"""Issue 18: LoRA and QLoRA on a GPU at real sizes, side by side with TRL's `SFTTrainer` + PEFT defaults (hand-written).

    python bench/gpu.py                 # Llama-3.2-1B and Llama-3.1-8B shapes, on the GPU
    python bench/gpu.py --only 1b       # one shape
    python bench/gpu.py --dry           # a tiny shape on the CPU, two steps a variant (CI: it cannot rot)

Models: random weights in the shapes of Llama-3.2-1B (hidden 2048, MLP 8192, 16 layers, 32/8 heads, vocabulary
128,256, tied) and Llama-3.1-8B (4096, 14336, 32 layers, 32/8 heads, 128,256, untied), written once in bfloat16 and
loaded through `lora_nb.models.load_model` like any checkpoint (4-bit nf4 with bfloat16 compute for QLoRA). Data:
plain-text examples cut from Python's documentation, 2,048 tokens each, padding-free batches. LoRA r=16 on all
linear layers, no dropout.

Each variant runs in a fresh process. Throughput is steady-state (non-pad tokens between the first logged step and
the last); MFU = model FLOP/s ÷ the GPU's datasheet dense bf16 peak, with 4N and with 6N a token (N: base parameters);
peak memory = `torch.cuda.max_memory_allocated` against `estimate`. Loss parity: first and final loss of every
variant on the same data. lora_nb's one-pass LoRA layers are measured against PEFT's own forward (-peft), packed
attention against SDPA over the whole row (-sdpa). Optional accelerators are measured on and off where installed:
Liger kernels (`use_liger_kernel`), `torch.compile` (the trainer's `torch_compile`); cut cross-entropy is reported
as not wired in when it is not installed.
"""
import argparse, importlib.util, json, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

SHAPES = {
    '1b': dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, max_position_embeddings=4096),
    '8b': dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False, max_position_embeddings=4096),
    'dry': dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=1024),
}
# dense bf16 tensor-core peaks from the vendors' datasheets (FLOP/s, without sparsity)
DATASHEET_BF16 = {'H200': 989e12, 'H100 SXM': 989e12, 'H100 80GB HBM3': 989e12, 'H100 PCIe': 756e12, 'H100': 989e12,
                  'A100': 312e12, 'L40S': 362e12, 'L4': 121e12, 'A10G': 70e12, 'A10': 125e12, 'RTX 4090': 165e12,
                  'B200': 2250e12}

CHILD = r'''
import sys, json, time, tempfile, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit
import torch
folder, variant, steps, batch, seq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cuda = torch.cuda.is_available()
import pydoc_data.topics as T
from lora_nb.models import load_model
from lora_nb.memory import estimate
from lora_nb import speed
kind, q = variant.split('-')[0], variant.split('-')[1]
quant = '4bit' if q == 'qlora' else 'none'
dt = 'bfloat16' if cuda else 'float32'
kw = dict(quantization=quant, dtype=dt) | (dict(bnb_4bit_compute_dtype=dt) if quant == '4bit' else {})
lm = load_model(folder, **kw)
n = speed.n_params(lm.model)
text = ' '.join(' '.join(v.split()) for _, v in sorted(T.topics.items()))
ids = lm.tokenizer(text, add_special_tokens=False)['input_ids']
need = (steps + 1) * batch
chunks = [lm.tokenizer.decode(ids[i * seq:(i + 1) * seq - 2]) for i in range(min(need, len(ids) // seq))]
chunks = (chunks * (need // max(1, len(chunks)) + 1))[:need]
marks = []
liger, compile_ = 'liger' in variant, 'compile' in variant
if cuda: torch.cuda.reset_peak_memory_stats()
if kind == 'session':
    from lora_nb.data import prepare
    from lora_nb.train import LoraSettings, Session, TrainSettings
    import lora_nb.train as TR
    if 'sdpa' in variant: TR.use_packed_attention = lambda m, on=True: False
    if 'peft' in variant: TR.use_one_pass_lora = lambda m, on=True: 0   # PEFT's own LoRA forward
    if liger or compile_:   # the trainer's own switches, on the arguments a Session builds
        _args = TrainSettings.training_arguments
        def _with(self, *a, **k):
            args = _args(self, *a, **k)
            args.use_liger_kernel, args.torch_compile = liger, compile_
            return args
        TrainSettings.training_arguments = _with
    data = prepare([{'text': c} for c in chunks], lm.tokenizer, eval_size=0, max_length=seq)
    train = TrainSettings(max_steps=steps, per_device_train_batch_size=batch, warmup_steps=0, save_steps=10**6,
                          logging_steps=1, learning_rate=2e-4)
    s = Session(lm, data, LoraSettings(r=16, lora_alpha=32, lora_dropout=0.0), train, root=tempfile.mkdtemp())
    def mark(e):
        if e.kind == 'log' and 'loss' in e.data:
            if cuda: torch.cuda.synchronize()
            marks.append((time.perf_counter(), e.data.get('num_input_tokens_seen'), e.data['loss']))
    s.add_listener(mark)
    s.start(background=False)
    assert s.status == 'completed', (s.status, s.error)
    gc_on = False
else:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer
    from transformers import TrainerCallback
    class Mark(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **k):
            if logs and 'loss' in logs:
                if cuda: torch.cuda.synchronize()
                marks.append((time.perf_counter(), state.num_input_tokens_seen, logs['loss']))
    ds = Dataset.from_list([{'text': c} for c in chunks])
    cfg = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=batch, logging_steps=1,
                    save_strategy='no', report_to='none', disable_tqdm=True, use_cpu=not cuda, learning_rate=2e-4,
                    include_num_input_tokens_seen='non_padding', max_length=seq, use_liger_kernel=liger,
                    **({} if cuda else dict(bf16=False)))
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules='all-linear', task_type='CAUSAL_LM')
    tr = SFTTrainer(model=lm.model, args=cfg, train_dataset=ds, processing_class=lm.tokenizer, peft_config=lora,
                    callbacks=[Mark()])
    tr.train()
    gc_on = bool(cfg.gradient_checkpointing)
(t1, k1, first), (t2, k2, loss) = marks[0], marks[-1]
tps = (k2 - k1) / (t2 - t1)
peak = torch.cuda.max_memory_allocated() if cuda else None
e = estimate(folder, quantization=quant, dtype=dt, r=16, per_device_train_batch_size=1, max_length=batch * seq,
             gradient_checkpointing=gc_on)
emit(tokens_per_s=tps, n_params=n, gc=gc_on, first_loss=first, final_loss=loss, peak_bytes=peak,
     estimate_bytes=e.total, device=torch.cuda.get_device_name(0) if cuda else 'cpu')
'''

PEAK = r'''
import sys, torch; sys.path.insert(0, 'bench'); from harness import emit
from lora_nb.speed import matmul_peak
if torch.cuda.is_available():
    a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16); b = a.clone(); a @ b; torch.cuda.synchronize()
    import time; best = 1e9
    for _ in range(10):
        t = time.perf_counter(); a @ b; torch.cuda.synchronize(); best = min(best, time.perf_counter() - t)
    emit(name=torch.cuda.get_device_name(0), measured=2 * 8192**3 / best)
else: emit(name='cpu', measured=matmul_peak('float32', n=512, reps=2))
'''

def make_model(folder:Path, shape:str) -> Path:
    "A random Llama of `shape` in bfloat16, built on the GPU when there is one, with the embedded tokenizer."
    import torch
    from transformers import AutoTokenizer, AutoModelForCausalLM, LlamaConfig
    from lora_nb.models import EMBEDDED_MODEL
    tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    cfg = LlamaConfig(**{'vocab_size': len(tok), **SHAPES[shape]}, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, bos_token_id=None)
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    with torch.device(dev): model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    if dev == 'cuda': torch.cuda.empty_cache()
    return folder

def datasheet_peak(name:str) -> float | None:
    "The dense bf16 peak for a GPU name, longest matching key first."
    return next((v for k, v in sorted(DATASHEET_BF16.items(), key=lambda kv: -len(kv[0])) if k in name), None)

def variants(dry:bool) -> list[str]:
    vs = ['session-lora', 'session-qlora', 'trl-lora', 'trl-qlora', 'session-lora-sdpa', 'session-lora-peft']
    if dry: return ['session-lora', 'session-qlora', 'trl-lora']
    if importlib.util.find_spec('liger_kernel'): vs += ['session-lora-liger', 'session-qlora-liger', 'trl-qlora-liger']
    vs += ['session-lora-compile']
    return vs

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--dry', action='store_true', help='a tiny shape on the CPU (CI)')
    ap.add_argument('--only', default=None, help="'1b' or '8b'")
    ap.add_argument('--steps', type=int, default=None)
    a = ap.parse_args()
    shapes = ['dry'] if a.dry else (a.only.split(',') if a.only else ['1b', '8b'])
    steps, batch, seq = (a.steps or 2, 2, 256) if a.dry else (a.steps or 8, 2 if a.only != '1b' else 4, 2048)
    peak = measure(PEAK)
    sheet = datasheet_peak(peak['name'])
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for shape in shapes:
            folder = make_model(Path(d)/shape, shape)
            rows = {}
            for v in variants(a.dry):
                b = 1 if shape == '8b' and v.startswith('trl-lora') else batch
                try: r = measure(CHILD, folder, v, steps, b, seq, timeout=3600)
                except RuntimeError as e:
                    rows[v] = dict(error=str(e)[-600:])
                    continue
                ref = sheet or peak['measured']
                fps4, fps6 = 4 * r['n_params'] * r['tokens_per_s'], 6 * r['n_params'] * r['tokens_per_s']
                rows[v] = dict(tokens_per_s=round(r['tokens_per_s'], 1), mfu_4n=round(fps4 / ref, 3),
                               mfu_6n=round(fps6 / ref, 3), gc=r['gc'], first_loss=round(r['first_loss'], 4),
                               final_loss=round(r['final_loss'], 4),
                               peak_gib=round(r['peak_bytes'] / 2**30, 2) if r['peak_bytes'] else None,
                               estimate_gib=round(r['estimate_bytes'] / 2**30, 2),
                               estimate_over_measured_memory=ratio(r['estimate_bytes'], r['peak_bytes'])
                               if r['peak_bytes'] else None)
                print(json.dumps({'progress': shape, 'variant': v, **rows[v]}), file=sys.stderr, flush=True)
            tps = {k: v['tokens_per_s'] for k, v in rows.items() if 'tokens_per_s' in v}
            ratios = {f'{s}_over_{t}': ratio(tps[s], tps[t]) for s, t in
                      (('session-lora', 'trl-lora'), ('session-qlora', 'trl-qlora'),
                       ('session-lora', 'session-lora-sdpa'), ('session-lora', 'session-lora-peft'),
                       ('session-lora-liger', 'session-lora'),
                       ('session-qlora-liger', 'session-qlora'), ('session-lora-compile', 'session-lora'))
                      if s in tps and t in tps}
            out[shape] = dict(variants=rows, ratios=ratios)
    emit(bench='gpu', dry=a.dry, device=peak['name'], datasheet_bf16_tflops=sheet and sheet / 1e12,
         measured_matmul_tflops=round(peak['measured'] / 1e12, 1), steps=steps, batch=batch, seq=seq, shapes=out,
         accelerators={'liger_kernel': bool(importlib.util.find_spec('liger_kernel')),
                       'cut_cross_entropy': bool(importlib.util.find_spec('cut_cross_entropy')) and 'not wired in',
                       'torch_compile': 'session-lora-compile' in variants(a.dry)},
         target='8b: session-qlora / trl-qlora >= 1.5; mfu_4n >= 0.35; estimate / measured memory within 0.85..1.15')

if __name__ == '__main__': main()
