"""GGUF export: round trips for every supported family, bad input, out of disk, the CLI (hand-written)."""
import itertools, json, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
import torch

from lora_nb.export import export_gguf, export_lora_gguf, push_gguf
from lora_nb.gguf_writer import (GGUFError, QUANTIZE_ENV, gguf_arch, model_tensors, special_ids, stop_markers,
                                 tensor_plan, write_gguf)
from lora_nb.gguf_check import reference, verify_gguf
from lora_nb.lora_gguf import lora_tensors
from lora_nb.llamacpp import llama_cpp_model
from lora_nb.ollama import chat_parts, parts_exact, write_modelfile
from lora_nb.models import load_model
from lora_nb.settings import DEMO_DATA

LORA_NB = str(Path(sys.executable).parent/'lora-nb')

# --- small tokenizers shaped like each family's, trained on the demo data -------------------------------------------

QWEN_RX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
           r"\s+(?!\S)|\s+")
LLAMA3_RX = QWEN_RX.replace(r"\p{N}|", r"\p{N}{1,3}|")
TEMPLATES = dict(
    chatml="{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    llama3="{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + "
           "m['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
           "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    mistral="{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
            "{{ '[INST] ' + m['content'] + ' [/INST]' }}{% elif m['role'] == 'assistant' %}"
            "{{ m['content'] + eos_token }}{% endif %}{% endfor %}",
    gemma="{{ bos_token }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
          "{{ '<start_of_turn>' + role + '\n' + m['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}",
    phi3="{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + '<|end|>\n' }}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")

def _texts():
    return [json.dumps(r) for r in open(DEMO_DATA)]

def _byte_level(rx, specials):
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders, trainers
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(rx), 'isolated'),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(_texts(), trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return t

def _spm(specials, prefix='normalizer'):
    "Sentencepiece-style BPE: '▁' for spaces, byte fallback tokens <0x00>…<0xFF>, as Llama 2, Mistral, Gemma, Phi-3."
    from tokenizers import Tokenizer, models, normalizers, decoders, pre_tokenizers, trainers
    t0 = Tokenizer(models.BPE())
    t0.normalizer = normalizers.Replace(' ', '▁')
    t0.train_from_iterator(_texts(), trainers.BpeTrainer(vocab_size=600, show_progress=False))
    base = json.loads(t0.to_str())['model']
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256): vocab[f'<0x{b:02X}>'] = len(vocab)
    for tkn in sorted(base['vocab'], key=base['vocab'].get): vocab.setdefault(tkn, len(vocab))
    merges = [tuple(m.split(' ')) if isinstance(m, str) else tuple(m) for m in base['merges']]
    t = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, unk_token='<unk>', fuse_unk=True))
    if prefix == 'metaspace':   # how recent Llama 2 and Mistral tokenizer.json files put '▁' before the first word
        t.pre_tokenizer = pre_tokenizers.Metaspace(replacement='▁', prepend_scheme='first', split=False)
    else:   # Phi-3's normalizer, and Gemma's (which adds no '▁')
        steps = [normalizers.Prepend('▁')] if prefix else []
        t.normalizer = normalizers.Sequence(steps + [normalizers.Replace(' ', '▁')])
    t.decoder = decoders.Sequence([decoders.Replace('▁', ' '), decoders.ByteFallback(), decoders.Fuse()])
    return t

def _bos(t, bos, i):
    from tokenizers import processors
    t.post_processor = processors.TemplateProcessing(single=f'{bos} $A', special_tokens=[(bos, i)])
    return t

def family_tokenizer(style):
    "A small tokenizer shaped like a family's: 'qwen', 'llama3', 'mistral', 'gemma' or 'phi3'."
    from transformers import PreTrainedTokenizerFast
    if style == 'qwen':
        t = _byte_level(QWEN_RX, ['<|endoftext|>', '<|im_start|>', '<|im_end|>'])
        kw = dict(eos_token='<|im_end|>', pad_token='<|endoftext|>', chat_template=TEMPLATES['chatml'])
    elif style == 'llama3':
        sp = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>']
        t = _bos(_byte_level(LLAMA3_RX, sp), '<|begin_of_text|>', 0)
        kw = dict(bos_token='<|begin_of_text|>', eos_token='<|eot_id|>', chat_template=TEMPLATES['llama3'])
    elif style == 'mistral':
        t = _bos(_spm(['<unk>', '<s>', '</s>'], prefix='metaspace'), '<s>', 1)
        kw = dict(bos_token='<s>', eos_token='</s>', unk_token='<unk>', chat_template=TEMPLATES['mistral'])
    elif style == 'gemma':
        sp = ['<pad>', '<eos>', '<bos>', '<unk>', '<start_of_turn>', '<end_of_turn>']
        t = _bos(_spm(sp, prefix=False), '<bos>', 2)
        kw = dict(bos_token='<bos>', eos_token='<eos>', unk_token='<unk>', pad_token='<pad>',
                  chat_template=TEMPLATES['gemma'])
    else:
        t = _spm(['<unk>', '<s>', '</s>', '<|user|>', '<|assistant|>', '<|system|>', '<|end|>'])
        kw = dict(bos_token='<s>', eos_token='<|end|>', unk_token='<unk>', chat_template=TEMPLATES['phi3'])
    extra = [a for a in t.get_vocab() if a.startswith('<') and a.endswith('>') and not a.startswith('<0x')
             and a not in kw.values()]
    return PreTrainedTokenizerFast(tokenizer_object=t, additional_special_tokens=sorted(extra), **kw)

LLAMA31_ROPE = dict(rope_type='llama3', rope_theta=5e5, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                    original_max_position_embeddings=16)   # so short that the scaling shows in a short test
FAMILIES = {'llama': ('llama', 'llama3', {}), 'llama3.1': ('llama', 'llama3', dict(rope_parameters=LLAMA31_ROPE)),
            'mistral': ('mistral', 'mistral', dict(sliding_window=None)), 'qwen2': ('qwen2', 'qwen', {}),
            'qwen3': ('qwen3', 'qwen', dict(head_dim=128)), 'phi3': ('phi3', 'phi3', {}),
            'gemma2': ('gemma2', 'gemma', dict(head_dim=256, query_pre_attn_scalar=256)),
            'gemma3': ('gemma3_text', 'gemma', dict(head_dim=256, query_pre_attn_scalar=256))}
# head dims: transformers' GGUF loader does not read Qwen3's and Gemma's head_dim or Gemma 2's query scale from the
# file (it keeps the config class defaults), so the test models use the defaults, as the real models do.

def family_model(family, folder):
    "A tiny random model of `family` with its family's tokenizer (vocabulary padded to a multiple of 64)."
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    model_type, style, extra = FAMILIES[family]
    tok = family_tokenizer(style)
    cfg = AutoConfig.for_model(model_type, vocab_size=(len(tok) + 63) // 64 * 64, hidden_size=64, intermediate_size=128,
                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                               pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                               bos_token_id=tok.bos_token_id, max_position_embeddings=512, initializer_range=0.2,
                               **extra)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():   # norms away from 1 (and Gemma's away from 0), so a lost offset would show
        for n, p in model.named_parameters():
            if 'norm' in n: p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, AutoTokenizer.from_pretrained(folder)

def random_adapter(dest, base=None, seed=0, scale=0.02, **kw):
    "A LoRA adapter with small random updates on every Linear layer of `base` (None: the embedded model)."
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(seed)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules='all-linear', **kw)
    pm = get_peft_model(load_model(base, quantization='none').model, cfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if 'lora_B' in n: p.normal_(0, scale)
    pm.save_pretrained(dest)
    return Path(dest)

def make_run(root, run_id='run-1', **kw):
    "A run folder under `root` with run.json and a random adapter on the embedded model."
    p = Path(root)/run_id
    random_adapter(p/'adapter', **kw)
    (p/'run.json').write_text(json.dumps(dict(id=run_id, name=run_id, status='completed')))
    return p

# --- round trips ----------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize('family', list(FAMILIES))
def test_family_round_trip(family, tmp_path):
    "F16 and Q8_0 files of a tiny random model of each family load in transformers with the merged model's logits."
    model, tok = family_model(family, tmp_path/'model')
    ref = reference(model, tok, n_tokens=32)
    for q, bound in (('f16', 1e-2), ('q8_0', 0.1)):   # random weights: Q8_0 errors add up more than in trained ones
        f = write_gguf(model, tok, tmp_path/f'm-{q}.gguf', q)
        v = verify_gguf(f, ref, tensor_plan(model_tensors(model, gguf_arch(model.config)), q), q, tok)
        assert not v.problems and v.logit_diff < bound, (q, str(v))
        assert v.tokenizer_same, (q, str(v))
    assert stop_markers(tok)[-1] in {'<|im_end|>', '<|eot_id|>', '</s>', '<end_of_turn>', '<|end|>'}
    assert special_ids(tok)['eot'] == tok.convert_tokens_to_ids(stop_markers(tok)[-1])
    assert parts_exact(tok, chat_parts(tok))

def test_embedded_q8_0_agrees_on_256_greedy_tokens(tmp_path):
    run = make_run(tmp_path)
    e = export_gguf(run, qtype='q8_0')
    assert e.verification.passed and e.verification.greedy_agreement >= 0.99 and e.verification.n_tokens == 256
    assert e.verification.tokenizer_same and e.stops == ['<|end|>']
    assert abs(e.bytes / e.estimate - 1) < 0.05

def test_rslora_and_alpha_pattern_fold_into_lora_b(tmp_path):
    "The LoRA GGUF's alpha ÷ r × B·A is PEFT's delta, in llama.cpp's row order, with rsLoRA and per-layer alphas."
    from peft import PeftModel
    from lora_nb.gguf_writer import _rope_permute
    ad = random_adapter(tmp_path/'ad', use_rslora=True, alpha_pattern={'v_proj': 2})
    lm = load_model(None, quantization='none')
    pm = PeftModel.from_pretrained(lm.model, str(ad))
    tensors, alpha = lora_tensors(ad, lm.model.config)
    got = {n: t for n, _, _, t in tensors}
    for mod, gname, heads in (('model.layers.1.self_attn.q_proj', 'blk.1.attn_q.weight', 4),
                              ('model.layers.1.self_attn.v_proj', 'blk.1.attn_v.weight', None)):
        want = pm.base_model.model.get_submodule(mod).get_delta_weight('default')
        want = _rope_permute(want, heads) if heads else want
        a, b = got[gname + '.lora_a'], got[gname + '.lora_b']
        torch.testing.assert_close(alpha / a.shape[0] * b @ a, want, rtol=1e-4, atol=1e-6)
    e = export_lora_gguf(ad, tmp_path/'lora.gguf')
    assert e.verification.passed and e.verification.tensors == len(tensors)

def test_streamed_merge_writes_what_peft_merges(tmp_path):
    "Merging tensor by tensor from the checkpoint gives the file PEFT's merged model gives; DoRA takes PEFT's path."
    import gguf
    from lora_nb.export import _file_source, load_merged
    run = make_run(tmp_path, use_rslora=True)
    assert _file_source(run, None) is not None
    streamed = export_gguf(run, tmp_path/'streamed.gguf', 'f16', verify=False).path
    merged, tok, _ = load_merged(run)
    loaded = write_gguf(merged, tok, tmp_path/'loaded.gguf', 'f16')
    a = {t.name: t.data for t in gguf.GGUFReader(str(streamed)).tensors}
    b = {t.name: t.data for t in gguf.GGUFReader(str(loaded)).tensors}
    assert a.keys() == b.keys()
    assert max(abs(a[k].astype('float32') - b[k].astype('float32')).max() for k in a) <= 1e-3
    dora = make_run(tmp_path, 'dora', use_dora=True)
    assert _file_source(dora, None) is None
    e = export_gguf(dora, qtype='f16', n_tokens=16)
    assert e.verification.passed, str(e.verification)

def test_kquant_through_llama_quantize(tmp_path, monkeypatch):
    "A K-quant goes through an F16 file and llama-quantize (here a stand-in that copies), then is checked."
    fake = tmp_path/'llama-quantize'
    fake.write_text(f"#!{sys.executable}\nimport shutil, sys\nshutil.copy(sys.argv[1], sys.argv[2])\n")
    fake.chmod(0o755)
    monkeypatch.setenv(QUANTIZE_ENV, str(fake))
    e = export_gguf(None, tmp_path/'out.gguf', 'q4_k_m', n_tokens=16)
    assert e.verification.passed, str(e.verification)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['llama-quantize', 'out.gguf']

# --- bad input: a clear error, nothing lost --------------------------------------------------------------------------

def test_unsupported_architecture_refused_before_writing(tmp_path):
    from lora_nb.models import save_random_model
    folder = save_random_model(tmp_path/'gpt2', model_type='gpt2', vocab_size=4096, n_embd=32, n_layer=1, n_head=2)
    with pytest.raises(GGUFError, match="Can't export 'gpt2' models") as e:
        export_gguf(folder, tmp_path/'out.gguf')
    assert 'convert_hf_to_gguf' in e.value.hint and not (tmp_path/'out.gguf').exists()

def test_unsupported_tokenizer_refused(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    lm = load_model(None, quantization='none')
    wp = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordPiece({'[UNK]': 0}, unk_token='[UNK]')))
    with pytest.raises(GGUFError, match="Can't export a WordPiece tokenizer"):
        write_gguf(lm.model, wp, tmp_path/'out.gguf')
    assert list(tmp_path.iterdir()) == []

def test_missing_base_fails_at_once(tmp_path):
    run = make_run(tmp_path)
    cfg = run/'adapter'/'adapter_config.json'
    cfg.write_text(cfg.read_text().replace('"base_model_name_or_path": "', '"base_model_name_or_path": "/gone'))
    for f in (lambda: export_gguf(run), lambda: export_lora_gguf(run)):
        with pytest.raises(GGUFError, match="The base model of this adapter can't be loaded") as e:
            f()
        assert '--base' in e.value.hint
    assert not (run/'export').exists()

def test_existing_output_is_not_overwritten(tmp_path):
    out = tmp_path/'model.gguf'
    out.write_bytes(b'mine')
    with pytest.raises(GGUFError, match='already exists'):
        export_gguf(None, out, 'f16', verify=False)
    assert out.read_bytes() == b'mine'
    mf = tmp_path/'model.Modelfile'
    mf.write_text('mine')
    with pytest.raises(GGUFError, match='already exists'):
        write_modelfile(tmp_path, load_model(None).tokenizer, 'model.gguf')
    assert mf.read_text() == 'mine'

def test_kquant_without_llama_quantize_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(QUANTIZE_ENV, raising=False)
    monkeypatch.setenv('PATH', str(tmp_path))
    t = time.time()
    with pytest.raises(GGUFError, match='llama-quantize') as e:
        export_gguf(None, tmp_path/'out.gguf', 'q4_k_m')
    assert time.time() - t < 5 and QUANTIZE_ENV in e.value.hint and 'q8_0' in e.value.hint
    assert not (tmp_path/'out.gguf').exists()

OUT_OF_DISK = textwrap.dedent('''
    import resource, signal, sys
    from lora_nb.export import export_gguf
    from lora_nb.gguf_writer import GGUFError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, 3 << 20))
    try: export_gguf(None, sys.argv[1], 'q8_0', verify=False)
    except GGUFError as e:
        print(e)
        sys.exit(3)
''')

def test_out_of_disk_leaves_no_half_file(tmp_path):
    "A file-size limit (RLIMIT_FSIZE) stops the write halfway: the error says so and no file is left under any name."
    out = tmp_path/'out'/'model.gguf'
    r = subprocess.run([sys.executable, '-c', OUT_OF_DISK, str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr[-2000:]
    assert 'Writing model.gguf failed' in r.stdout and 'Free disk space' in r.stdout
    assert not out.parent.exists()   # nor the folder it made for it

def test_push_without_token_or_network_fails_at_once_and_keeps_the_export(tmp_path, monkeypatch):
    f = export_gguf(None, tmp_path/'m.gguf', 'f16', verify=False).path
    before = f.read_bytes()
    monkeypatch.delenv('HF_TOKEN', raising=False)
    monkeypatch.setenv('HF_TOKEN_PATH', str(tmp_path/'no-token'))
    monkeypatch.setattr('huggingface_hub.get_token', lambda: None)
    with pytest.raises(GGUFError, match='no Hugging Face token'):
        push_gguf([f], 'me/tiny')
    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_OFFLINE', True)
    t = time.time()
    with pytest.raises(GGUFError, match='not reachable') as e:
        push_gguf([f], 'me/tiny', token='hf_x')
    assert time.time() - t < 5 and str(tmp_path) in e.value.hint
    assert f.read_bytes() == before

# --- the CLI --------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_export_gguf_with_ollama(tmp_path):
    make_run(tmp_path)
    r = subprocess.run([LORA_NB, 'export', 'run-1', '--gguf', 'q8_0', '--ollama', '--runs-root', str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'estimated size:' in r.stdout and 'verified:' in r.stdout and 'ollama create run-1-q8_0 -f' in r.stdout
    ex = tmp_path/'run-1'/'export'
    assert (ex/'run-1-q8_0.gguf').exists() and 'PARAMETER stop "<|end|>"' in (ex/'run-1-q8_0.Modelfile').read_text()
    r = subprocess.run([LORA_NB, 'export', 'run-1', '--gguf', 'q8_0', '--adapter-only', '--ollama',
                        '--runs-root', str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    mf = (ex/'run-1-lora-q8_0.Modelfile').read_text()
    assert 'FROM ./tiny_base-q8_0.gguf\nADAPTER ./run-1-lora-q8_0.gguf' in mf
    r = subprocess.run([LORA_NB, 'export', 'run-1', '--gguf', 'q8_0', '--runs-root', str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and 'already exists' in r.stderr and 'Traceback' not in r.stderr

# --- llama.cpp itself -----------------------------------------------------------------------------------------------

def _llama_cpp_greedy(model, tok, f, lora=None, n=16):
    "Greedy tokens from transformers and from llama.cpp (llama-cpp-python) after the same chat prompt."
    text = tok.apply_chat_template([{'role': 'user', 'content': 'Name three data types, please.'}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)['input_ids']
    want = model.generate(torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False, top_p=None,
                          top_k=None, temperature=None)[0, len(ids):].tolist()
    llm = llama_cpp_model(f, lora, n_ctx=256)   # repacking off: hazard 28
    plain = 'Hello  world ünï 123456\n\tx'
    same_tokens = llm.tokenize(plain.encode(), add_bos=False, special=True) == tok(plain, add_special_tokens=False)[
        'input_ids']
    got = []
    for t in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0):
        got.append(t)
        if len(got) == n: break
    return want, got, same_tokens

@pytest.mark.slow
@pytest.mark.parametrize('family', ['embedded', *FAMILIES])
def test_llama_cpp_generates_the_same_greedy_tokens(family, tmp_path, llama_cpp):
    "llama.cpp (llama-cpp-python, compiled from PyPI) loads the F16 GGUF, tokenizes and greedy-decodes as transformers."
    if family == 'embedded':
        lm = load_model(None, quantization='none')
        model, tok = lm.model, lm.tokenizer
    else: model, tok = family_model(family, tmp_path/'model')
    want, got, same_tokens = _llama_cpp_greedy(model, tok, write_gguf(model, tok, tmp_path/'m.gguf', 'f16'))
    assert got == want and same_tokens

@pytest.mark.slow
def test_llama_cpp_applies_the_lora_gguf_as_the_merged_model(tmp_path, llama_cpp):
    "The base GGUF with the LoRA GGUF in llama.cpp decodes as the merged model in transformers."
    from lora_nb.export import load_merged
    run = make_run(tmp_path, scale=0.05)
    lm = load_model(None, quantization='none')
    base = write_gguf(lm.model, lm.tokenizer, tmp_path/'base.gguf', 'f16')
    lora = export_lora_gguf(run, tmp_path/'lora.gguf').path
    merged, tok, _ = load_merged(run)
    want, got, _ = _llama_cpp_greedy(merged, tok, base, lora)
    base_want, _, _ = _llama_cpp_greedy(lm.model, tok, base)
    assert got == want and want != base_want   # the adapter changes the answer, and llama.cpp applies it

QUANTIZE_WITH_LLAMA_CPP = '''
import sys, llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = getattr(llama_cpp, 'LLAMA_FTYPE_MOSTLY_' + sys.argv[3])
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p))
'''

@pytest.mark.slow
def test_real_k_quant_loads_and_runs(tmp_path, monkeypatch, llama_cpp):
    "A real Q4_K_M (llama.cpp's quantizer, through llama-cpp-python as a llama-quantize stand-in) reads back and runs."
    exe = tmp_path/'llama-quantize'
    exe.write_text(f"#!{sys.executable}\n{QUANTIZE_WITH_LLAMA_CPP}")
    exe.chmod(0o755)
    monkeypatch.setenv(QUANTIZE_ENV, str(exe))
    e = export_gguf(None, tmp_path/'m.gguf', 'q4_k_m', n_tokens=64)
    assert e.verification.passed and e.verification.greedy_agreement > 0.5, str(e.verification)
    assert e.bytes < 0.5 * export_gguf(None, tmp_path/'f16.gguf', 'f16', verify=False).bytes
    assert abs(e.bytes / e.estimate - 1) < 0.25   # K-quants mix types: a rougher estimate
    llm = llama_cpp_model(e.path, n_ctx=64)
    assert len(list(itertools.islice(llm.generate([3], top_k=1, temp=0.0), 8))) == 8   # llama.cpp runs it
