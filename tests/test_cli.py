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
