"""The README's main job: `lora-nb demo` end to end in a fresh process (hand-written)."""
import json, re, subprocess, sys
import pytest
from pathlib import Path
from conftest import wait_for_loss

@pytest.mark.slow
def test_demo_command(tmp_path):
    lora_nb = Path(sys.executable).parent/'lora-nb'
    r = subprocess.run([str(lora_nb), 'demo', '--epochs', '2', '--runs-root', str(tmp_path)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'held-out exact match: base' in r.stdout and 'report:' in r.stdout
    run = next(tmp_path.iterdir())
    demo = json.loads((run/'run.json').read_text())['demo']
    assert demo['tuned'] > demo['base'] and demo['base'] <= 0.2
    report = (run/'report.html').read_text()
    assert 'plotly' in report.lower() and '<table' in report and 'What is the type of' in report
    assert (run/'adapter'/'adapter_model.safetensors').exists() and (run/'adapter'/'README.md').exists()
    ev = [json.loads(l) for l in (run/'evals.jsonl').read_text().splitlines()][-1]   # evaluated, kept with the run
    own = next(c for c, v in ev['columns'].items() if v['run'] == run.name)
    assert ev['figures'][own]['exact_match']['value'] == demo['tuned'] and ev['data']['n'] == 60
    assert demo['tuned_interval'][0] <= demo['tuned'] <= demo['tuned_interval'][1] and '95 % interval' in r.stdout
    assert 'held-out literals' in report

def test_errors_exit_2_with_one_message(tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent/'lora-nb'), 'estimate', str(tmp_path/'nope')],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith('lora-nb: No config.json') and 'Traceback' not in r.stderr

LORA_NB = str(Path(sys.executable).parent/'lora-nb')

def _short_run(tmp_path) -> Path:
    "A real two-step run of the embedded model by `lora-nb train`; its folder."
    (tmp_path/'run.yaml').write_text("data:\n  records:\n    - {instruction: Say hi., output: hi}\n"
                                     "    - {instruction: Say yo., output: yo}\n  eval_size: 0\n"
                                     "lora: {r: 4}\ntrain: {max_steps: 2, save_steps: 10}\nruns_root: runs\n")
    r = subprocess.run([LORA_NB, 'train', str(tmp_path/'run.yaml')], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return next((tmp_path/'runs').iterdir())

def test_the_model_cards_load_snippet_runs(tmp_path):
    "The `## Load it` code of a real run's adapter/README.md, run as it is in a fresh process, elsewhere."
    run = _short_run(tmp_path)
    card = (run/'adapter'/'README.md').read_text()
    code = card.split('## Load it', 1)[1].split('```python\n', 1)[1].split('```', 1)[0]
    code += "print(type(model).__name__, model.active_adapter, model.base_model.model.config.model_type)\n"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600, cwd='/')
    assert r.returncode == 0, (code, r.stderr[-3000:])
    assert r.stdout.split() == ['PeftModelForCausalLM', 'default', 'llama'], r.stdout

def test_demo_stopped_with_a_stop_file_says_so(tmp_path):
    "A STOP file written into the demo's run folder while it trains: a sentence and status 0, as `lora-nb train`."
    p = subprocess.Popen([LORA_NB, 'demo', '--quantization', 'none', '--runs-root', str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = wait_for_loss(p, tmp_path)
    if metrics: (metrics.parent/'STOP').write_text('')
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and 'Traceback' not in err, err[-3000:]
    run = metrics.parent
    assert "stopped as asked at step" in out and f"the adapter so far is in {run/'adapter'}." in out, out
    assert 'unquantized' in out.splitlines()[0] and 'report:' not in out
    demo = json.loads((run/'run.json').read_text())['demo']
    assert demo['status'] == 'stopped' and 1 <= demo['step'] < demo['total_steps']
    assert (run/'adapter'/'adapter_config.json').exists() and not (run/'report.html').exists()

# LLaMA 65B's shape (its config.json, no weights): what QLoRA fine-tuned on one 48 GB GPU
LLAMA_65B = dict(model_type='llama', hidden_size=8192, intermediate_size=22016, num_hidden_layers=80,
                 num_attention_heads=64, num_key_value_heads=64, vocab_size=32000)

def _estimate(tmp_path, *args):
    (tmp_path/'config.json').write_text(json.dumps(LLAMA_65B))
    r = subprocess.run([LORA_NB, 'estimate', str(tmp_path/'config.json'), *args], capture_output=True, text=True,
                       timeout=300)
    mib = {k: float(v.replace(',', '')) for k, v in re.findall(r'^  (\w+) +([\d,.]+) MiB$', r.stdout, re.M)}
    return r, mib

def test_estimate_of_qlora_65b_lands_near_48gb(tmp_path):
    "QLoRA (Dettmers et al. 2023, arXiv:2305.14314): LLaMA 65B fine-tunes in 48 GB with NF4, double quant, r=64."
    # the paper's setting: 4-bit NF4 + double quantization, bfloat16 compute, LoRA r=64 on all linear layers with
    # dropout 0.05, gradient checkpointing; here one sequence of 512 tokens. Margin: 85 % to 100 % of 48 GiB.
    r, mib = _estimate(tmp_path, '--quantization', '4bit', '--double-quant', '--dtype', 'bfloat16', '--r', '64',
                       '--target-modules', 'all-linear', '--lora-dropout', '0.05', '--gradient-checkpointing',
                       '--fits', '48GB')
    assert r.returncode == 0, r.stderr
    assert 0.85 <= mib['total'] / (48 * 1024) <= 1.0, mib
    assert mib['optimizer'] == 2 * mib['lora_params']          # AdamW's two float32 moments per float32 weight
    assert r.stdout.startswith('MemoryEstimate (4bit double quant, r=64, batch 1×512, gradient checkpointing)')
    assert 'fits in 48.0 GiB: yes, but tight' in r.stdout, r.stdout

def test_estimate_target_modules_fits_no_and_bad_flags(tmp_path):
    _, every = _estimate(tmp_path, '--dtype', 'bfloat16')
    r, two = _estimate(tmp_path, '--dtype', 'bfloat16', '--target-modules', 'q_proj,v_proj', '--fits', '24GB')
    assert r.returncode == 1 and 'target_modules q_proj,v_proj' in r.stdout.splitlines()[0], r.stdout
    ratio = 2 * 2 * 8192 / (4 * 2 * 8192 + 3 * (8192 + 22016))      # r·(in+out) of q, v over all seven per layer
    assert two['lora_params'] / every['lora_params'] == pytest.approx(ratio, rel=1e-3)
    assert re.search(r'^fits in 24\.0 GiB: no, [\d.]+ GiB short \(needs [\d.]+ GiB, \d+% of it\)$', r.stdout, re.M)
    for bad, says in ((['--quantization', '8bit', '--double-quant'], '`--double-quant` quantizes the scales of 4-bit'),
                      (['--fits', '24'], "'24' is not a memory size"),
                      (['--target-modules', 'nope'], "['nope'] match no Linear layer")):
        r, _ = _estimate(tmp_path, *bad)
        assert r.returncode == 2 and r.stderr.startswith('lora-nb: ') and says in r.stderr, r.stderr

def test_serve_command_answers_with_a_runs_adapter(tmp_path):
    "`lora-nb serve --adapter RUN_ID`: the run's adapter on its base, at an OpenAI-compatible /v1 (free port)."
    import signal, urllib.request
    run = _short_run(tmp_path)
    p = subprocess.Popen([LORA_NB, 'serve', '--runs-root', str(run.parent), '--adapter', run.name, '--port', '0',
                          '--name', 'tiny'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line: p.wait(timeout=60)                                   # it ended: say why
        assert line.startswith('serving tiny at http://127.0.0.1:') and f"(adapter {run/'adapter'})" in line, \
            (line, p.stderr.read() if p.poll() is not None else '')
        url = line.split()[3]
        models = json.load(urllib.request.urlopen(f'{url}/models', timeout=60))
        assert [m['id'] for m in models['data']] == ['tiny']
        body = json.dumps({'model': 'tiny', 'messages': [{'role': 'user', 'content': 'Say hi.'}], 'max_tokens': 4})
        req = urllib.request.Request(f'{url}/chat/completions', body.encode(), {'Content-Type': 'application/json'})
        reply = json.load(urllib.request.urlopen(req, timeout=120))
        assert reply['object'] == 'chat.completion' and isinstance(reply['choices'][0]['message']['content'], str)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
    assert p.returncode == 0

def test_serve_refuses_in_one_message(tmp_path):
    "An adapter that is not there, a port in use: lora_nb's message and status 2, no traceback."
    import socket
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        for args, says in ((['--adapter', str(tmp_path/'gone'/'run-1')], f"{str(tmp_path/'gone')!r} does not exist"),
                           (['--port', str(busy.getsockname()[1])], "Can't listen on 127.0.0.1:")):
            r = subprocess.run([LORA_NB, 'serve', *args], capture_output=True, text=True, timeout=300)
            assert r.returncode == 2 and r.stderr.startswith('lora-nb: ') and says in r.stderr, r.stderr
            assert 'Traceback' not in r.stderr

def test_demo_interrupted_with_ctrl_c_stops_and_says_so(tmp_path):
    "Ctrl-C while the demo trains stops it at the next step boundary: the same sentence as a STOP file, status 0."
    import signal
    p = subprocess.Popen([LORA_NB, 'demo', '--quantization', 'none', '--runs-root', str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = wait_for_loss(p, tmp_path)
    if metrics: p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and 'Traceback' not in err and 'before training started' not in err, err[-3000:]
    assert 'stopping at the next step' in err and 'stopped as asked at step' in out, (out, err)
    assert (metrics.parent/'adapter'/'adapter_config.json').exists()

def test_the_model_cards_load_snippet_runs_for_a_base_in_a_relative_folder(tmp_path):
    "A base loaded as `mymodel` (a folder under the working directory): the card names its absolute path."
    from lora_nb.models import save_random_model
    save_random_model(tmp_path/'mymodel')
    (tmp_path/'run.yaml').write_text("model: {model_id: mymodel, quantization: none}\n"
                                     "data:\n  records:\n    - {instruction: Say hi., output: hi}\n  eval_size: 0\n"
                                     "lora: {r: 4}\ntrain: {max_steps: 1, save_steps: 10}\nruns_root: runs\n")
    r = subprocess.run([LORA_NB, 'train', 'run.yaml'], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run = next((tmp_path/'runs').iterdir())
    card = (run/'adapter'/'README.md').read_text()
    code = card.split('## Load it', 1)[1].split('```python\n', 1)[1].split('```', 1)[0]
    assert repr(str(tmp_path/'mymodel')) in code, code
    r = subprocess.run([sys.executable, '-c', code + "print(model.active_adapter)\n"], capture_output=True, text=True,
                       timeout=600, cwd='/')
    assert r.returncode == 0 and r.stdout.split() == ['default'], (code, r.stderr[-3000:])
