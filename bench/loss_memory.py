"""Issue 25 part 6: the memory of the training loss with a large vocabulary, with and without computing it by chunks
of tokens (`lora_nb.speed.use_chunked_loss`), side by side (hand-written).

    python bench/loss_memory.py                 # Qwen2.5-0.5B's shape and vocabulary (151,936), 8 × 256 tokens
    python bench/loss_memory.py --quick         # 2 layers, 2 × 128 tokens: checks that it runs
    python bench/loss_memory.py --smollm2       # the real SmolLM2-135M-Instruct (vocabulary 49,152), from its GGUF

Model: random weights in Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14/2 heads, MLP 4864, q/k/v bias, tied
embeddings, vocabulary 151,936), bfloat16, a LoRA (r 16) on every linear layer with the one-pass LoRA layers, as a
`Session` trains it. One batch of random tokens, the first third of each row masked (-100) as a prompt. Each variant
runs in a fresh process: a first step (warm-up), then the peak RSS (VmHWM, reset just before) of a second step:
- `body`: the same step without the head and the loss (the mean square of the last hidden states): the rest of a step;
- `full`: the model's own loss over the whole logits (transformers' ForCausalLMLoss: float32 logits of every position);
- `chunked`: the loss by chunks of tokens (the default of a Session when a step's logits are large).
The loss's memory is a variant's peak minus `body`'s; its share is that over the variant's whole peak (weights
included). Memory only: nothing here is timed, so it can run beside other work.
"""
import argparse, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

CHILD = r'''
import sys, time, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit, status, reset_peak
import torch
from peft import LoraConfig, get_peft_model
from lora_nb.models import load_model
from lora_nb.speed import use_chunked_loss, use_one_pass_lora
folder, variant, batch, seq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lm = load_model(folder, quantization='none', dtype='bfloat16')
cfg = LoraConfig(r=16, lora_alpha=32, target_modules='all-linear', lora_dropout=0.0, task_type='CAUSAL_LM')
m = get_peft_model(lm.model, cfg).train()
m.config.use_cache = False
use_one_pass_lora(m)
V = m.config.vocab_size
ids = torch.randint(0, V, (batch, seq), generator=torch.Generator().manual_seed(0))
labels = ids.clone()
labels[:, :seq // 3] = -100
rows = use_chunked_loss(m) if variant == 'chunked' else 0
def step():
    if variant == 'body':
        h = m.get_base_model().model(input_ids=ids, use_cache=False).last_hidden_state
        loss = h.float().square().mean()
    else: loss = m(input_ids=ids, labels=labels, use_cache=False).loss
    loss.backward()
    m.zero_grad(set_to_none=True)
    return loss.item()
first = step()
rss = status('VmRSS')
reset_peak()
second = step()
emit(variant=variant, loss_chunk_tokens=rows, loss=second, rss_before=rss, peak=status('VmHWM'),
     weights_bytes=sum(p.numel() * p.element_size() for p in m.parameters()))
'''

SHAPE = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
             num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True, vocab_size=151936)

def make_model(root:Path, layers:int) -> Path:
    import torch
    from lora_nb.models import save_random_model
    return save_random_model(root/'qwen', model_type='qwen2', dtype=torch.bfloat16,
                             **dict(SHAPE, num_hidden_layers=layers))

def real_model(root:Path) -> Path:
    "The real SmolLM2-135M-Instruct from its GGUF, as bench/cpu_speed.py makes it."
    from cpu_speed import real_model as make
    return make(root/'smollm2')

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true', help='2 layers, 2 × 128 tokens: checks that it runs')
    ap.add_argument('--layers', type=int, default=None, help="decoder layers (Qwen2.5-0.5B's 24 by default)")
    ap.add_argument('--smollm2', action='store_true', help='the real SmolLM2-135M-Instruct instead of the Qwen shape')
    ap.add_argument('--batch', type=int, default=None)
    ap.add_argument('--seq', type=int, default=None)
    a = ap.parse_args()
    layers = a.layers or (2 if a.quick else 24)
    batch, seq = a.batch or (2 if a.quick else 8), a.seq or (128 if a.quick else 256)
    with tempfile.TemporaryDirectory() as d:
        folder = real_model(Path(d)) if a.smollm2 else make_model(Path(d), layers)
        r = {v: measure(CHILD, folder, v, batch, seq, timeout=3600) for v in ('body', 'full', 'chunked')}
    mib = lambda b: round(b / 2**20)
    loss = {v: r[v]['peak'] - r['body']['peak'] for v in ('full', 'chunked')}
    model = 'SmolLM2-135M-Instruct (real, from its GGUF)' if a.smollm2 else dict(SHAPE, num_hidden_layers=layers)
    emit(bench='loss_memory', quick=a.quick, model=model, dtype='bfloat16',
         tokens=batch * seq, batch=batch, seq=seq, labelled_tokens=batch * (seq - seq // 3),
         loss_chunk_tokens=r['chunked']['loss_chunk_tokens'],
         peak_mib={v: mib(x['peak']) for v, x in r.items()}, weights_mib=mib(r['body']['weights_bytes']),
         loss_mib={v: mib(x) for v, x in loss.items()},
         loss_share_of_peak={v: ratio(loss[v], r[v]['peak']) for v in loss},
         full_over_chunked_peak=ratio(r['full']['peak'], r['chunked']['peak']),
         same_loss=abs(r['full']['loss'] - r['chunked']['loss']) <= 1e-3 * abs(r['full']['loss']),
         losses={v: round(r[v]['loss'], 5) for v in ('full', 'chunked')},
         target='chunked loss_share_of_peak < 0.10')

if __name__ == '__main__': main()
