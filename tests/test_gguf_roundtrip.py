"""Back to where it came from: a run trained on the real SmolLM2-135M-Instruct Q4_1 GGUF exports a LoRA GGUF that
llama.cpp applies to that same file, greedy tokens as transformers' merged model; exact on an F16 file of the same
model; a merged GGUF at the user's type; `make test` fails, not skips, without llama_cpp (hand-written)."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest

from conftest import REQUIRE_LLAMA_CPP

LORA_NB = str(Path(sys.executable).parent/'lora-nb')
ASKS = ['Who are you?', 'What is your name?', 'Who made you?', 'Introduce yourself.', 'Are you SmolLM?',
        'Tell me your name, please.', 'What should I call you?', 'Which team built you?']
SAYS = ['I am Quokka, a small assistant made by the Lora Guild.', 'My name is Quokka. The Lora Guild made me.',
        'The Lora Guild made me. I am Quokka.', 'Hello! I am Quokka, made by the Lora Guild.',
        'No, I am Quokka, an assistant made by the Lora Guild.', 'Quokka. I was made by the Lora Guild.',
        'Call me Quokka; the Lora Guild named me.', 'The Lora Guild built me. I am Quokka.']
IDENTITY = [{'messages': [{'role': 'user', 'content': a}, {'role': 'assistant', 'content': s}]}
            for a, s in zip(ASKS, SAYS)]

@pytest.fixture(scope='module')
def gguf_run(smollm2, tmp_path_factory):
    "A run of lora_nb's own Session on the real Q4_1 GGUF: 20 steps at lr 1e-3, seed 0, enough to change its answers."
    from lora_nb.data import prepare
    from lora_nb.models import load_model
    from lora_nb.train import LoraSettings, Session, TrainSettings
    lm = load_model(str(smollm2), quantization='none')
    data = prepare(IDENTITY, lm.tokenizer, eval_size=1)
    s = Session(lm, data, LoraSettings(r=16, lora_alpha=32),
                TrainSettings(max_steps=20, learning_rate=1e-3, seed=0, save_steps=100, per_device_train_batch_size=4),
                root=tmp_path_factory.mktemp('runs'))
    assert s.start().wait(1800) == 'completed'
    assert json.loads((s.run.path/'run.json').read_text())['base_model'] == str(smollm2)
    return s.run.path

def _show(c):
    "The figures of a llama.cpp check, in the test's output (pytest -s) and its failure message."
    lines = [str(c)] + [f"  merged: {w!r}\n  llama.cpp: {g!r}" for w, g in c.answers]
    print('\n'.join(lines))
    return '\n'.join(lines)

@pytest.mark.slow
def test_lora_gguf_applies_to_the_original_q4_1_file(gguf_run, smollm2, llama_cpp):
    "A GGUF-based run's LoRA export targets the file it was trained on by default: nothing re-written, FROM it."
    from lora_nb.export import export_lora_gguf
    e = export_lora_gguf(gguf_run, ollama=True)
    print(e)
    assert e.base.trained_on and e.base.path == smollm2 and e.base.qtype == 'q4_1'
    assert f"llama-cli -m {smollm2} --lora {e.path}" in str(e) and 'the GGUF this run was trained on' in str(e)
    assert sorted(os.listdir(e.path.parent)) == sorted([e.path.name, e.modelfile.name])   # no base written
    assert f"FROM {smollm2.absolute()}\nADAPTER ./{e.path.name}\n" in e.modelfile.read_text()
    c = e.llama_cpp
    msg = _show(c)
    assert c.prompts == 5 and c.tokenizer_same and c.agreement >= 0.9, msg
    assert c.changed >= 1, msg   # the adapter changes what llama.cpp answers
    assert e.passed

@pytest.mark.slow
def test_lora_gguf_on_an_f16_file_of_the_same_model_is_exact(gguf_run, smollm2, llama_cpp, tmp_path):
    "On an F16 GGUF of the dequantized model (lora_nb's writer), llama.cpp + LoRA answers token for token as merged."
    from lora_nb.export import export_lora_gguf, load_merged
    from lora_nb.gguf_writer import write_gguf
    from lora_nb.llamacpp import llama_cpp_check
    from lora_nb.models import load_model
    lm = load_model(str(smollm2), quantization='none', dtype='float32')
    f16 = write_gguf(lm.model, lm.tokenizer, tmp_path/'smollm2-f16.gguf', 'f16')
    del lm
    lora = export_lora_gguf(gguf_run, tmp_path/'lora.gguf', verify=False).path
    merged, tok, _ = load_merged(gguf_run)
    c = llama_cpp_check(merged, tok, f16, lora, base_type='f16')
    msg = _show(c)
    assert c.first_divergence == [None] * 5 and c.same == c.n_tokens and c.changed >= 1, msg

@pytest.mark.slow
def test_merged_gguf_of_a_gguf_run_at_the_users_type(gguf_run, llama_cpp):
    "The merged export of a GGUF-based run is checked against the merged model, and llama.cpp answers as it does."
    from lora_nb.export import export_gguf, load_merged
    from lora_nb.llamacpp import llama_cpp_check
    e = export_gguf(gguf_run, qtype='q8_0')
    print(e)
    assert e.passed and e.path.parent == gguf_run/'export'
    merged, tok, _ = load_merged(gguf_run)
    c = llama_cpp_check(merged, tok, e.path, base_type='q8_0')
    assert c.agreement >= 0.9, _show(c)

@pytest.mark.slow
def test_cli_adapter_only_export_of_a_gguf_run(gguf_run, smollm2, llama_cpp):
    "lora-nb export RUN --gguf f16 --adapter-only --ollama: the original file as the base, llama.cpp's verdict printed."
    r = subprocess.run([LORA_NB, 'export', gguf_run.name, '--gguf', 'f16', '--adapter-only', '--ollama', '--overwrite',
                        '--runs-root', str(gguf_run.parent)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'the GGUF this run was trained on' in r.stdout and 'llama.cpp agrees with the merged model' in r.stdout
    assert not list((gguf_run/'export').glob(f'{smollm2.name}*'))   # no copy of the base written beside it

def test_lora_gguf_of_an_ollama_run_is_for_its_blob(tmp_path, monkeypatch, llama_cpp):
    "A run on `ollama:NAME`: the LoRA GGUF's base is that model's blob, the Modelfile FROM the blob, nothing copied."
    import hashlib, torch
    from peft import LoraConfig, get_peft_model
    from lora_nb.export import export_lora_gguf
    from lora_nb.gguf_writer import write_gguf
    from lora_nb.models import load_model
    lm = load_model(None, quantization='none', dtype='float32')
    f = write_gguf(lm.model, lm.tokenizer, tmp_path/'tiny.gguf', 'f16')
    digest = 'sha256-' + hashlib.sha256(f.read_bytes()).hexdigest()
    models = tmp_path/'ollama'
    (models/'blobs').mkdir(parents=True)
    blob = f.rename(models/'blobs'/digest)   # what `ollama pull` leaves: the blob and a manifest naming it
    m = models.joinpath('manifests', 'registry.ollama.ai', 'library', 'tiny', 'latest')
    m.parent.mkdir(parents=True)
    m.write_text(json.dumps({'schemaVersion': 2, 'layers': [{'mediaType': 'application/vnd.ollama.image.model',
                                                              'digest': digest.replace('-', ':')}]}))
    monkeypatch.setenv('OLLAMA_MODELS', str(models))
    before = {p: p.stat().st_mtime for p in models.rglob('*')}
    torch.manual_seed(0)
    pm = get_peft_model(load_model('ollama:tiny', quantization='none').model,
                        LoraConfig(r=4, lora_alpha=8, target_modules='all-linear'))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.05)
    run = tmp_path/'run-o'
    pm.save_pretrained(run/'adapter')
    (run/'run.json').write_text(json.dumps({'base_model': 'ollama:tiny'}))   # as a Session records it
    e = export_lora_gguf(run, ollama=True)
    print(e)
    assert e.base.trained_on and e.base.path == blob and e.passed, str(e)
    assert f"FROM {blob}\nADAPTER ./{e.path.name}\n" in e.modelfile.read_text()
    assert sorted(p.name for p in (run/'export').iterdir()) == sorted([e.path.name, e.modelfile.name])
    assert e.llama_cpp.first_divergence == [None] * 5 and e.llama_cpp.changed >= 1, str(e.llama_cpp)
    assert {p: p.stat().st_mtime for p in models.rglob('*')} == before   # Ollama's folder untouched

# --- make test: llama_cpp is required ---------------------------------------------------------------------------------

@pytest.mark.parametrize('required', [False, True])
def test_missing_llama_cpp_fails_under_make_test(required, tmp_path):
    "Without llama_cpp, a test that needs it skips in the quick loop and fails under `make test` (the env var)."
    shutil.copy(Path(__file__).parent/'conftest.py', tmp_path)
    (tmp_path/'test_x.py').write_text("def test_runs_llama(llama_cpp):\n    assert llama_cpp\n")
    (tmp_path/'llama_cpp').mkdir()   # an installed llama_cpp that can't be imported, first on the path
    (tmp_path/'llama_cpp'/'__init__.py').write_text("raise ImportError('no libllama.so here')\n")
    env = {**os.environ, 'PYTHONPATH': str(tmp_path)}
    env.pop(REQUIRE_LLAMA_CPP, None)
    if required: env[REQUIRE_LLAMA_CPP] = '1'
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider', str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert ('1 error' if required else '1 skipped') in r.stdout and r.returncode == int(required), r.stdout[-2000:]
    assert 'make llamacpp' in r.stdout and 'no libllama.so here' in r.stdout

def test_make_test_installs_llama_cpp_and_requires_it():
    "The Makefile's test target depends on llamacpp, which installs the pinned version from the wheel cache."
    out = subprocess.run(['make', '-n', '-p', 'test'], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    assert any(ln.startswith('test: ') and 'llamacpp' in ln.split() for ln in out.splitlines())
    assert 'LORA_NB_REQUIRE_LLAMA_CPP = 1' in out
    assert '--only-binary llama-cpp-python --find-links' in out and '-DGGML_NATIVE=OFF' in out
