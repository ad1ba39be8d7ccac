"""Memory and load time of a ~100M-parameter random-init Llama (saved in bf16), loaded in 4-bit vs bf16.

Each load runs in a fresh process and is followed by one forward pass, so every weight is in use (a bf16 load
maps the checkpoint without reading it: before a forward, its RSS says nothing). Figures, 4-bit over bf16:
- resident: RSS after load + forward, above the RSS after imports: the memory the model holds while used;
- peak: the highest RSS over load + forward (VmHWM), above the same baseline. The checkpoint is read through a
  memory map, so its pages count while they are mapped: a 4-bit load's peak includes the bf16 file;
- load time.
"""
import sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import measure, emit, ratio

CHILD = r'''
import sys, time, json
sys.path.insert(0, 'bench')
from harness import status, emit
import torch, transformers, lora_nb.models as M
M.import_bnb()
base = status('VmRSS')
t0 = time.perf_counter()
lm = M.load_model(sys.argv[1], quantization=sys.argv[2], dtype='bfloat16')
dt = time.perf_counter() - t0
with torch.no_grad(): lm.model(input_ids=torch.randint(0, 1000, (1, 64)))
emit(load_s=dt, peak_rss=status('VmHWM') - base, resident=status('VmRSS') - base, params=lm.summary.parameters,
     footprint=lm.summary.memory_bytes)
'''

def main():
    from lora_nb.models import save_random_model
    with tempfile.TemporaryDirectory() as d:
        # 12 layers, hidden 768, MLP 2048, vocab 32000 (tied): ~110M parameters, saved in bf16
        import torch
        save_random_model(d, hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                          num_key_value_heads=12, vocab_size=32000, tie_word_embeddings=True, dtype=torch.bfloat16)
        runs = {q: [measure(CHILD, d, q) for _ in range(2)] for q in ('none', '4bit')}
    low = lambda q, k: min(r[k] for r in runs[q])
    mib = lambda q, k: round(low(q, k) / 2**20, 1)
    emit(bench='load_4bit_vs_bf16', params=runs['none'][0]['params'],
         resident_mib_bf16=mib('none', 'resident'), resident_mib_4bit=mib('4bit', 'resident'),
         resident_ratio_4bit_over_bf16=ratio(low('4bit', 'resident'), low('none', 'resident')),
         peak_rss_mib_bf16=mib('none', 'peak_rss'), peak_rss_mib_4bit=mib('4bit', 'peak_rss'),
         peak_rss_ratio_4bit_over_bf16=ratio(low('4bit', 'peak_rss'), low('none', 'peak_rss')),
         weights_ratio_4bit_over_bf16=ratio(low('4bit', 'footprint'), low('none', 'footprint')),
         load_s_bf16=round(low('none', 'load_s'), 2), load_s_4bit=round(low('4bit', 'load_s'), 2),
         load_time_ratio_4bit_over_bf16=ratio(low('4bit', 'load_s'), low('none', 'load_s')), target_ratio='<= 0.6')

if __name__ == '__main__': main()
