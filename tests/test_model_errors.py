"""Bad input to the loader: each case raises lora_nb's own error with a message that says what to do,
and leaves the user's files as they were (hand-written)."""
import json, shutil, time
from pathlib import Path
import pytest, transformers
from lora_nb.errors import LoraNbError, ModelLoadError, SettingsError
from lora_nb.models import load_model, save_random_model, hub_reachable
from conftest import tree_digest

def _fails(exc, match, *args, folder=None, **kw):
    before = tree_digest(folder) if folder else None
    with pytest.raises(exc) as e: load_model(*args, **kw)
    assert isinstance(e.value, LoraNbError) and e.value.hint, f"no hint in {e.value!r}"
    assert match in str(e.value), str(e.value)
    if folder: assert tree_digest(folder) == before, "the error changed the user's files"
    return str(e.value)

@pytest.fixture(scope='module')
def rand(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp('rand'))

def _copy(src, dst, drop=()):
    shutil.copytree(src, dst)
    for f in drop: (Path(dst)/f).unlink(missing_ok=True)
    return Path(dst)

def test_missing_folder():
    msg = _fails(ModelLoadError, 'does not exist', './no/such/model')
    assert 'embedded' in msg

def test_hub_id_offline_fails_fast():
    t0 = time.time()
    msg = _fails(ModelLoadError, 'lora-nb-test/no-such-model-x7', 'lora-nb-test/no-such-model-x7')
    assert time.time() - t0 < 15
    if not hub_reachable(): assert 'offline' in msg and 'local folder' in msg

def test_hub_endpoint_refusing_connections(monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'ENDPOINT', 'http://127.0.0.1:9')
    t0 = time.time()
    _fails(ModelLoadError, 'offline', 'someorg/somemodel')
    assert time.time() - t0 < 5

def test_hub_offline_mode(monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    _fails(ModelLoadError, 'offline', 'someorg/somemodel')

def test_file_not_folder(rand):
    _fails(ModelLoadError, 'is a file', str(rand/'config.json'))

def test_folder_without_config(tmp_path, rand):
    d = _copy(rand, tmp_path/'m', drop=['config.json'])
    _fails(ModelLoadError, 'no config.json', str(d), folder=d)

def test_corrupt_config(tmp_path, rand):
    d = _copy(rand, tmp_path/'m')
    (d/'config.json').write_text('{"model_type": "llama", ')
    msg = _fails(ModelLoadError, "config.json is not valid JSON", str(d), folder=d)
    assert 'config.json:1:' in msg

def test_folder_without_tokenizer(tmp_path, rand):
    d = _copy(rand, tmp_path/'m',
              drop=['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'special_tokens_map.json'])
    msg = _fails(ModelLoadError, 'no tokenizer files', str(d), folder=d)
    assert 'save_pretrained' in msg

def test_not_a_causal_lm(tmp_path):
    d = tmp_path/'bert'
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                  vocab_size=128)
    transformers.BertForMaskedLM(cfg).save_pretrained(d)
    msg = _fails(ModelLoadError, 'not a causal language model', str(d), folder=d)
    assert 'BertForMaskedLM' in msg

def test_remote_code_off(tmp_path):
    d = tmp_path/'custom'
    d.mkdir()
    (d/'config.json').write_text(json.dumps({'model_type': 'lora-nb-custom', 'architectures': ['CustomForCausalLM'],
        'auto_map': {'AutoConfig': 'configuration_custom.CustomConfig',
                     'AutoModelForCausalLM': 'modeling_custom.CustomForCausalLM'}}))
    (d/'configuration_custom.py').write_text('from transformers import PretrainedConfig\nclass '
                                             'CustomConfig(PretrainedConfig):\n    model_type = "lora-nb-custom"\n')
    _fails(ModelLoadError, 'trust_remote_code=True', str(d), folder=d)

@pytest.mark.parametrize('kw,match', [
    (dict(quantization='2bit'), '`quantization`'),
    (dict(load_in_4bit=True, load_in_8bit=True), 'both set'),
    (dict(quantization='8bit', load_in_4bit=True), 'contradicts'),
    (dict(bnb_4bit_quant_type='int4', load_in_4bit=True), "'nf4' or 'fp4'"),
    (dict(bnb_4bit_compute_dtype='float64', load_in_4bit=True), "Unknown dtype 'float64'"),
    (dict(dtype='half-ish'), "Unknown dtype"),
])
def test_invalid_settings(kw, match):
    _fails(SettingsError, match, None, **kw)

def test_unknown_setting_name():
    msg = _fails(SettingsError, 'Unknown model setting `load_in_3bit`', None, load_in_3bit=True)
    assert 'load_in_4bit' in msg

_OFFLINE_LOAD = """
import logging
from lora_nb.models import load_model
lm = load_model(quantization='4bit')
logging.getLogger('kernels._internals.hf_hub').warning("Skipping publisher trust check for 'someone/else' (kept)")
print('loaded', lm.summary.quantized_layers > 0)
"""

def test_no_trust_check_notice_on_an_offline_load():
    "An offline 4-bit load prints no 'Skipping publisher trust check for kernels-community/…'; only that is dropped."
    # bitsandbytes' import asks `kernels` (where installed) for a kernels-community kernel; offline, `kernels` logs it
    import importlib.util, os, subprocess, sys
    from lora_nb.models import import_bnb
    if importlib.util.find_spec('kernels') is None or not import_bnb().functional.has_avx512bf16():
        pytest.skip("bitsandbytes asks `kernels` only where it is installed, on a CPU with AVX512-BF16")
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-c', _OFFLINE_LOAD], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and r.stdout.split() == ['loaded', 'True'], r.stderr[-3000:]
    assert "trust check for 'kernels-community/" not in r.stderr, r.stderr
    assert "Skipping publisher trust check for 'someone/else' (kept)" in r.stderr, r.stderr
