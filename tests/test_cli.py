"""The README's main job: `lora-nb demo` end to end in a fresh process (hand-written)."""
import json, subprocess, sys
import pytest
from pathlib import Path

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
    import time
    p = subprocess.Popen([LORA_NB, 'demo', '--quantization', 'none', '--runs-root', str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        metrics = list(tmp_path.glob('*/metrics.jsonl'))
        if metrics and '"loss"' in metrics[0].read_text():
            (metrics[0].parent/'STOP').write_text('')
            break
        time.sleep(0.2)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and 'Traceback' not in err, err[-3000:]
    run = metrics[0].parent
    assert "stopped as asked at step" in out and f"the adapter so far is in {run/'adapter'}." in out, out
    assert 'unquantized' in out.splitlines()[0] and 'report:' not in out
    demo = json.loads((run/'run.json').read_text())['demo']
    assert demo['status'] == 'stopped' and 1 <= demo['step'] < demo['total_steps']
    assert (run/'adapter'/'adapter_config.json').exists() and not (run/'report.html').exists()
