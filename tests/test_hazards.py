"""bitsandbytes CPU hazards (shared/DESIGN.md 1-3), checked on real models (hand-written)."""
import torch
import pytest
from peft import LoraConfig, get_peft_model
from lora_nb.models import load_model, import_bnb, save_random_model, check_forward
from lora_nb.errors import QuantizationError

def _lora(model, seed):
    torch.manual_seed(seed)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules='all-linear', lora_dropout=0.0, init_lora_weights=False)
    return get_peft_model(model, cfg)

def _dequantized_copy(lm4):
    "The embedded model in float32 with every Linear4bit weight replaced by its dequantized value."
    bnb = import_bnb()
    ref = load_model(quantization='none', dtype='float32').model
    n = 0
    for name, m in lm4.model.named_modules():
        if isinstance(m, bnb.nn.Linear4bit):
            w = bnb.functional.dequantize_4bit(m.weight.data, m.weight.quant_state).float()
            ref.get_submodule(name).weight.data.copy_(w)
            n += 1
    assert n == 42
    return ref

def _grads(model, batch):
    model.zero_grad()
    model(**batch, labels=batch['input_ids'], use_cache=False).loss.backward()
    return {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

def test_lora_grads_after_generate_match_dequantized_copy():
    "Hazard 1: after a no-grad generate(), LoRA gradients on the 4-bit model equal those on a dequantized float copy."
    lm4 = load_model(quantization='4bit')
    ref = _dequantized_copy(lm4)
    q, f = _lora(lm4.model, 0), _lora(ref, 0)
    f.load_state_dict({k: v for k, v in q.state_dict().items() if 'lora_' in k}, strict=False)
    tok = lm4.tokenizer
    ids = tok(['The "while" statement is used for repeated execution', 'A class definition defines a class object'],
              return_tensors='pt', padding=True)
    q.eval()
    q.generate(**ids, max_new_tokens=8, do_sample=False)   # the no-grad forward that used to corrupt the weights
    q.train()
    f.train()
    gq, gf = _grads(q, ids), _grads(f, ids)
    assert gq.keys() == gf.keys() and len(gq) == 2 * 42
    rel = {k: ((gq[k] - gf[k]).norm() / gf[k].norm()).item() for k in gq}
    worst = max(rel, key=rel.get)
    assert rel[worst] < 1e-2, f"{worst}: relative gradient error {rel[worst]:.3g}"
    layer0 = [v for k, v in rel.items() if '.layers.0.' in k]
    assert len(layer0) == 14 and max(layer0) < 1e-2

def test_every_linear4bit_has_repacking_off():
    lm4 = load_model(quantization='4bit')
    bnb = import_bnb()
    mods = [m for m in lm4.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(mods) == 42 and not any(m.support_avx512bf16_for_cpu for m in mods)

def test_odd_sized_layers_train_in_4bit_on_cpu(tmp_path):
    "Hazard 2 cannot happen with repacking off: a 200-wide MLP loads, runs forward and backward in 4-bit."
    save_random_model(tmp_path, intermediate_size=200)
    lm = load_model(str(tmp_path), quantization='4bit')
    model = _lora(lm.model, 0)
    ids = lm.tokenizer(['a b c d'], return_tensors='pt')
    model(**ids, labels=ids['input_ids']).loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)

def test_kernel_refusal_names_the_layer(tmp_path):
    "Hazard 2's failure (with bitsandbytes' repacking on) becomes a QuantizationError naming the layer and the choices."
    save_random_model(tmp_path, intermediate_size=200)
    lm = load_model(str(tmp_path), quantization='4bit')
    gate = lm.model.model.layers[0].mlp.gate_proj
    gate.support_avx512bf16_for_cpu = True   # as on a CPU with AVX512-BF16 without lora_nb's patch
    with pytest.raises(QuantizationError) as e:
        check_forward(lm.model, '4-bit nf4')
    msg = str(e.value)
    assert 'model.layers.0.mlp.gate_proj' in msg and '200' in msg and "'8bit'" in msg and "'none'" in msg

@pytest.mark.parametrize('code', ['from lora_nb.models import import_bnb; import_bnb()', 'import lora_nb.generation',
                                  'import lora_nb.train', 'import lora_nb.adapters', 'import lora_nb.cli',
                                  'import lora_nb.models, peft'])
@pytest.mark.slow
def test_bnb_import_is_quiet(code):
    "Hazards 3 and 20: bitsandbytes' notice about `kernels` comes when transformers' Trainer or peft import it."
    import subprocess, sys
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0 and 'kernels' not in r.stderr + r.stdout, r.stderr

def _has_avx512_bf16() -> bool:
    from pathlib import Path
    return 'avx512_bf16' in Path('/proc/cpuinfo').read_text()

@pytest.mark.slow
@pytest.mark.skipif(not _has_avx512_bf16(), reason='bitsandbytes prints the notice only on CPUs with AVX512-BF16')
def test_bnb_notice_is_there_to_silence():
    "Without lora_nb first, importing bitsandbytes does print it (so the test above can fail; peft 0.22 no longer "
    "imports bitsandbytes when imported itself, Trainer and older peft do)."
    import subprocess, sys
    r = subprocess.run([sys.executable, '-c', 'import bitsandbytes'], capture_output=True, text=True)
    assert 'kernels' in r.stderr, 'bitsandbytes no longer prints it: drop lora_nb.__init__ filters and these tests'

def test_8bit_on_cpu_loads_in_float16_and_does_not_log_per_matmul(capfd):
    lm = load_model(quantization='8bit', dtype='float32')
    assert lm.summary.dtype == 'float16' and lm.summary.quantized_layers == 42
    capfd.readouterr()
    ids = lm.tokenizer(['The "if" statement'], return_tensors='pt')
    for _ in range(3): lm.model(**ids)
    out = capfd.readouterr()
    assert out.err.count('\n') < 2, out.err
