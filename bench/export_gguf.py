"""GGUF export of a ~500M-parameter random model with Qwen2.5-0.5B's shape, merged with a LoRA adapter, to Q8_0.

A run folder is made with a random base of Qwen2.5-0.5B's shape (24 layers, hidden 896, MLP 4864, 14/2 heads, vocabulary
151936, tied embeddings, q/k/v biases; saved in bf16) and a random r=16 adapter on every Linear layer. Each export runs
in a fresh process; figures:
- seconds: loading the base, merging (float32) and writing the file (not the check);
- peak RSS ÷ merged model bytes (float32 parameters), both the whole process's and above its RSS after imports
  (target ≤ 1.5);
- file size ÷ the estimate shown before the export (from the safetensors headers and the tokenizer; target ±5 %);
- side by side: the same model written by gguf's GGUFWriter the usual way (every tensor quantized in memory, then the
  file), for peak RSS and seconds;
- the check (`--verify`), measured apart: PEFT merges the model for reference outputs, then transformers loads the
  file; its seconds, peak RSS ÷ merged bytes, logits and greedy tokens against the merged model (a random model has
  flat logits, so its greedy agreement says less than a trained model's: the embedded model's Q8_0 agrees at 100 %).
The tokenizer is a small byte-level BPE with Qwen2's split, padded to the vocabulary: a real Qwen tokenizer adds ~7 MB.
"""
import json, shutil, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent/'tests'))
from harness import measure, emit, ratio

OURS = r'''
import sys, time
sys.path.insert(0, 'bench')
from harness import status, emit, reset_peak
from pathlib import Path
import torch, lora_nb.export as X
from lora_nb.models import load_tokenizer
base = status('VmRSS')
est = X.estimate_gguf(sys.argv[1], 'q8_0')
e = X.export_gguf(sys.argv[1], sys.argv[2], 'q8_0', verify=False)
out = dict(seconds=e.seconds, peak=status('VmHWM'), peak_above_imports=status('VmHWM') - base, bytes=e.bytes,
           estimate=est)
if sys.argv[3] == '1':   # the check, apart: it builds the merged model (PEFT), then loads the file in transformers
    reset_peak()
    t0, tok = time.perf_counter(), load_tokenizer(str(X._model_folder(sys.argv[1])))
    v = X._check(Path(sys.argv[2]), None, tok, None, 'q8_0', sys.argv[1], None, 256)
    out.update(check_seconds=time.perf_counter() - t0, check_peak=status('VmHWM'), logit_diff=v.logit_diff,
               greedy=v.greedy_agreement, n_tokens=v.n_tokens, problems=v.problems)
emit(**out)
'''

NAIVE = r'''
import sys, time
sys.path.insert(0, 'bench')
from harness import status, emit
import numpy as np, torch, gguf, lora_nb.gguf_writer as W
from lora_nb.export import load_merged
base = status('VmRSS')
t0 = time.perf_counter()
model, tok, name = load_merged(sys.argv[1])
arch = W.gguf_arch(model.config)
w = gguf.GGUFWriter(sys.argv[2], arch)
W.add_hparams(w, model.config, arch)
W.add_tokenizer(w, tok, model.config)
for n, hf, _, t in W.model_tensors(model, arch):   # the usual way: every tensor converted and quantized in memory first
    a = W.to_gguf_layout(hf, t, arch, model.config).detach().float().numpy()
    typ = W.tensor_type(a.shape, 'q8_0')
    w.add_tensor(n, gguf.quants.quantize(a, typ), raw_dtype=typ)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
emit(seconds=time.perf_counter() - t0, peak=status('VmHWM'), peak_above_imports=status('VmHWM') - base)
'''

def make_run(d:Path) -> tuple[Path, int]:
    "A run folder with a random Qwen2.5-0.5B-shaped base and adapter; returns it and the merged float32 bytes."
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model
    from test_export import family_tokenizer
    tok = family_tokenizer('qwen')
    cfg = AutoConfig.for_model('qwen2', vocab_size=151936, hidden_size=896, intermediate_size=4864,
                               num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                               max_position_embeddings=32768,
                               tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(d/'base')
    tok.save_pretrained(d/'base')
    pm = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules='all-linear', init_lora_weights=False))
    pm.save_pretrained(d/'run'/'adapter')
    (d/'run'/'run.json').write_text(json.dumps(dict(id='run', status='completed')))
    cfg_file = d/'run'/'adapter'/'adapter_config.json'   # the base by its folder
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), 'base_model_name_or_path': str(d/'base')}))
    return d/'run', n * 4

def main(verify:bool='--verify' in sys.argv):
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        run, merged = make_run(d)
        ours = measure(OURS, run, d/'ours.gguf', int(verify))
        naive = measure(NAIVE, run, d/'naive.gguf')
        same = (d/'ours.gguf').stat().st_size - (d/'naive.gguf').stat().st_size
        shutil.rmtree(d/'base')
    mib = lambda b: round(b / 2**20, 1)
    emit(bench='export_gguf', params=merged // 4, merged_mib=mib(merged), seconds=round(ours['seconds'], 1),
         file_mib=mib(ours['bytes']), estimate_mib=mib(ours['estimate']), size_over_estimate=ratio(ours['bytes'],
         ours['estimate']), target_size_over_estimate='0.95..1.05',
         peak_rss_mib=mib(ours['peak']), peak_rss_over_merged=ratio(ours['peak'], merged),
         peak_above_imports_over_merged=ratio(ours['peak_above_imports'], merged), target_peak_over_merged='<= 1.5',
         naive_seconds=round(naive['seconds'], 1), naive_peak_rss_mib=mib(naive['peak']),
         peak_ours_over_naive=ratio(ours['peak'], naive['peak']), seconds_ours_over_naive=ratio(ours['seconds'],
         naive['seconds']), size_minus_naive_bytes=same,
         **({} if not verify else dict(check_seconds=round(ours['check_seconds'], 1),
                                       check_peak_rss_over_merged=ratio(ours['check_peak'], merged),
                                       logit_diff=ours['logit_diff'], greedy_agreement=ours['greedy'],
                                       n_tokens=ours['n_tokens'], problems=ours['problems'])))

if __name__ == '__main__': main()
