"""Mixing adapters (lora_nb.adapters.mix over PEFT's add_weighted_adapter): exact or refused, per input kind and
combination type (hand-written)."""
import pytest
import torch

from lora_nb.adapters import COMBINATIONS, AdapterError, load, loaded, mix
from lora_nb.models import load_model
from test_export import random_adapter

KINDS = {'plain': {}, 'rslora': dict(use_rslora=True), 'dora': dict(use_dora=True), 'bias': dict(lora_bias=True)}
PROMPT = 'Reverse the word while, please.'

@pytest.fixture(scope='module')
def adapters(tmp_path_factory):
    "One random adapter folder per kind, with updates large enough to move the logits (DoRA: magnitudes too)."
    root = tmp_path_factory.mktemp('adapters')
    out = {}
    for kind, kw in KINDS.items():
        for i in (1, 2):
            out[kind, i] = _trained_looking(random_adapter(root/f'{kind}-{i}', seed=i, scale=0.2, **kw))
    return out

def _trained_looking(folder):
    "Give the DoRA magnitudes and lora_B biases of a saved adapter values away from their start."
    from safetensors.torch import load_file, save_file
    f = folder/'adapter_model.safetensors'
    sd = load_file(str(f))
    g = torch.Generator().manual_seed(0)
    for k, t in sd.items():
        if 'lora_magnitude_vector' in k: sd[k] = t * (1 + 0.2 * torch.randn(t.shape, generator=g))
        elif 'lora_B' in k and k.endswith('bias'): sd[k] = 0.2 * torch.randn(t.shape, generator=g)
    save_file(sd, str(f))
    return folder

def _model(adapters, kind, n=1):
    "The embedded model (float32) with adapters 'one' (and 'two') of `kind` loaded."
    pm = load(load_model(None, quantization='none', dtype='float32').model, adapters[kind, 1], 'one')
    if n == 2: load(pm, adapters[kind, 2], 'two')
    return pm

def _logits(pm, name, ids):
    pm.set_adapter(name)
    with torch.no_grad(): return pm(ids).logits

@pytest.fixture(scope='module')
def ids():
    return load_model(None, quantization='none').tokenizer(PROMPT, return_tensors='pt')['input_ids']

@pytest.mark.parametrize('kind', ['plain', 'rslora'])
def test_one_adapter_at_weight_1_is_the_adapter(kind, adapters, ids):
    "Every combination type of one adapter at weight 1 gives the adapter's logits (PEFT's mix: rsLoRA off by ~8)."
    pm = _model(adapters, kind)
    want = _logits(pm, 'one', ids)
    for ct in COMBINATIONS:
        mix(pm, {'one': 1.0}, f'mix-{ct}', ct)
        torch.testing.assert_close(_logits(pm, f'mix-{ct}', ids), want, rtol=0, atol=1e-4, msg=f'{kind} {ct}')

def test_rslora_cat_is_the_weighted_sum(adapters, ids):
    "`cat` of two rsLoRA adapters at 1 and 0 is the first; at 1 and 1 it is both updates added (checked on one layer)."
    pm = _model(adapters, 'rslora', 2)
    mix(pm, {'one': 1.0, 'two': 0.0}, 'just-one', 'cat')
    torch.testing.assert_close(_logits(pm, 'just-one', ids), _logits(pm, 'one', ids), rtol=0, atol=1e-4)
    mix(pm, {'one': 1.0, 'two': -0.5}, 'both', 'cat')
    q = pm.base_model.model.model.layers[1].self_attn.q_proj
    want = q.get_delta_weight('one') - 0.5 * q.get_delta_weight('two')
    torch.testing.assert_close(q.get_delta_weight('both'), want, rtol=1e-4, atol=1e-6)

@pytest.mark.parametrize('ct', COMBINATIONS)
def test_dora_mixes_are_refused(ct, adapters):
    "Any mix with a DoRA adapter (PEFT's mix gets the base's magnitudes; 0.22 refuses DoRA itself): refused with the "
    "reason, nothing added."
    pm = _model(adapters, 'dora', 2)
    load(pm, adapters['plain', 1], 'plain')
    for weights in ({'one': 1.0}, {'one': 1.0, 'two': 1.0}, {'one': 0.5}, {'one': 1.0, 'two': 0.0},
                    {'plain': 1.0, 'one': 1.0}):
        with pytest.raises(AdapterError, match=f"can't be mixed with `{ct}`") as e:
            mix(pm, weights, 'mixed', ct)
        assert 'learned magnitude' in e.value.what and 'use_dora=False' in e.value.hint
    assert loaded(pm) == ['one', 'two', 'plain']

def test_lora_bias_is_refused(adapters):
    "PEFT's mix leaves a lora_bias adapter's bias out (off by ~2 in the logits): refused."
    pm = _model(adapters, 'bias')
    with pytest.raises(AdapterError, match='lora_bias'):
        mix(pm, {'one': 1.0}, 'mixed', 'cat')
    assert loaded(pm) == ['one']
