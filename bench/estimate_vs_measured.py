"""`lora_nb.memory` vs the measured peak memory of a LoRA training step on the CPU, for a few configurations.

Each configuration runs in a fresh process: RSS after imports is the baseline; the model is loaded, wrapped with
LoRA, one AdamW step is taken to allocate the optimizer state, the peak is reset, and a second full step
(forward, backward, optimizer) is measured. Measured = peak anonymous memory of that step − anonymous memory
after imports (the peak RSS minus the file-backed pages, which a step does not change: clean pages of the
checkpoint file that the kernel can drop are not memory the step needs).
"""
import sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import measure, emit, ratio

CHILD = r'''
import sys, json, gc
sys.path.insert(0, 'bench')
from harness import status, emit, reset_peak
import torch, transformers, peft
from peft import LoraConfig, get_peft_model
import lora_nb.models as M
from lora_nb.memory import estimate
M.import_bnb()
folder, quant = sys.argv[1], sys.argv[2]
bs, seq, r = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
gc_on, dropout = sys.argv[6] == '1', float(sys.argv[7])
base = status('RssAnon')
lm = M.load_model(folder, quantization=quant)
model = lm.model
if gc_on:
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={'use_reentrant': False})
    model.enable_input_require_grads()
model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2*r, target_modules='all-linear', lora_dropout=dropout))
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
g = torch.Generator().manual_seed(0)
ids = torch.randint(10, lm.tokenizer.vocab_size, (bs, seq), generator=g)
def step():
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
step(); gc.collect()
reset_peak()
step()
measured = status('VmHWM') - status('RssFile') - base
e = estimate(folder, quantization=quant, dtype='float32', r=r, per_device_train_batch_size=bs, max_length=seq,
             gradient_checkpointing=gc_on, lora_dropout=dropout)
emit(measured=measured, estimate=e.total, parts=e.parts())
'''

CONFIGS = [  # (name, model, quantization, batch, seq, r, gradient checkpointing, lora_dropout)
    ('embedded-4bit-b8x256', None, '4bit', 8, 256, 8, False, 0.0),
    ('embedded-none-b16x256', None, 'none', 16, 256, 16, False, 0.0),
    ('40M-4bit-b4x512', 'm40', '4bit', 4, 512, 8, False, 0.0),
    ('40M-4bit-b4x512-dropout', 'm40', '4bit', 4, 512, 8, False, 0.1),
    ('40M-4bit-b8x512-gc', 'm40', '4bit', 8, 512, 8, True, 0.0),
    ('100M-4bit-b2x512', 'm100', '4bit', 2, 512, 16, False, 0.0),
    ('100M-8bit-b2x256', 'm100', '8bit', 2, 256, 8, False, 0.0),
]
MODELS = {'m40': dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                      num_key_value_heads=4, vocab_size=8192),
          'm100': dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                       num_key_value_heads=12, vocab_size=32000)}

def main():
    from lora_nb.models import save_random_model, EMBEDDED_MODEL
    rows = []
    with tempfile.TemporaryDirectory() as d:
        folders = {k: save_random_model(Path(d)/k, **kw) for k, kw in MODELS.items()}
        for name, m, quant, bs, seq, r, gc_on, dropout in CONFIGS:
            res = measure(CHILD, folders[m] if m else EMBEDDED_MODEL, quant, bs, seq, r, int(gc_on), dropout)
            rows.append(dict(config=name, estimate_mib=round(res['estimate'] / 2**20, 1),
                             measured_mib=round(res['measured'] / 2**20, 1),
                             ratio=ratio(res['estimate'], res['measured']),
                             parts_mib={k: round(v / 2**20, 1) for k, v in res['parts'].items()}))
    emit(bench='estimate_vs_measured', configs=rows, worst_abs_error=round(max(abs(r['ratio'] - 1) for r in rows), 3),
         target='every ratio within 0.8..1.2')

if __name__ == '__main__': main()
