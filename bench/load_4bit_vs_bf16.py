"""Peak RSS and load time of a ~100M-parameter random-init Llama, loaded in 4-bit vs bf16 (each in a fresh process)."""
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
emit(load_s=dt, peak_rss=status('VmHWM') - base, rss_after=status('VmRSS') - base, params=lm.summary.parameters,
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
    best = {q: min(rs, key=lambda r: r['peak_rss']) for q, rs in runs.items()}
    fast = {q: min(r['load_s'] for r in rs) for q, rs in runs.items()}
    emit(bench='load_4bit_vs_bf16', params=best['none']['params'],
         peak_rss_mib_bf16=round(best['none']['peak_rss'] / 2**20, 1), peak_rss_mib_4bit=round(best['4bit']['peak_rss'] / 2**20, 1),
         peak_rss_ratio_4bit_over_bf16=ratio(best['4bit']['peak_rss'], best['none']['peak_rss']),
         footprint_ratio_4bit_over_bf16=ratio(best['4bit']['footprint'], best['none']['footprint']),
         load_s_bf16=round(fast['none'], 2), load_s_4bit=round(fast['4bit'], 2),
         load_time_ratio_4bit_over_bf16=ratio(fast['4bit'], fast['none']), target_peak_rss_ratio='<= 0.6')

if __name__ == '__main__': main()
