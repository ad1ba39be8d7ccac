"""`lora-nb demo --prefer` in a fresh process: SFT, scripted blind votes, DPO, parent vs child (hand-written)."""
import json, subprocess, sys
from pathlib import Path
from conftest import wait_for_loss
import pytest

@pytest.mark.slow
def test_prefer_demo_command(tmp_path):
    lora_nb = Path(sys.executable).parent/'lora-nb'
    r = subprocess.run([str(lora_nb), 'demo', '--prefer', '--runs-root', str(tmp_path)], capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'held-out questions, judged blind' in r.stdout
    child = next(p for p in tmp_path.iterdir() if p.name.startswith('demo-dpo-'))
    info = json.loads((child/'run.json').read_text())
    demo = info['demo']
    assert info['parent'] == demo['sft_run'] and (tmp_path/demo['sft_run']/'preferences.jsonl').exists()
    assert demo['n'] >= 40 and demo['win_rate'] >= 0.7 and demo['interval'][0] > 0.5, demo
    assert demo['task_child'] >= demo['task_parent'] - 0.05, demo
    assert (child/'votes.jsonl').exists() and (child/'adapter'/'adapter_model.safetensors').exists()
    assert 'parent' in (child/'adapter'/'README.md').read_text()

def test_prefer_demo_stopped_with_a_stop_file_says_so(tmp_path):
    "A STOP file while `demo --prefer` trains its SFT run: one sentence, status 0, no RuntimeError."
    lora_nb = Path(sys.executable).parent/'lora-nb'
    p = subprocess.Popen([str(lora_nb), 'demo', '--prefer', '--runs-root', str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    metrics = wait_for_loss(p, tmp_path, 'demo-sft-*/metrics.jsonl')
    if metrics: (metrics.parent/'STOP').write_text('')
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and 'Traceback' not in err and 'RuntimeError' not in err, err[-3000:]
    assert 'stopped as asked at step' in out and metrics.parent.name in out, out
