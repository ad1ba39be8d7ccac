"""Training sessions: stop, resume after a crash in a new process, NaN, bad calls, no printing from the thread (hand-written)."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest, torch
from lora_nb.errors import SettingsError
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.runs import Run
from lora_nb.train import LoraSettings, Session, TrainError, TrainSettings

WORDS = ['loop', 'class', 'yield', 'raise', 'while', 'import', 'return', 'lambda']
RECS = [{'instruction': f'Reverse the word {w}.', 'output': w[::-1]} for w in WORDS * 3]

@pytest.fixture
def lm(): return load_model(quantization='none')

@pytest.fixture
def data(lm): return prepare(RECS, lm.tokenizer, eval_size=4)

def _session(lm, data, tmp_path, **train):
    return Session(lm, data, LoraSettings(r=4), TrainSettings(**{'max_steps': 4, 'learning_rate': 1e-3, 'save_steps': 2, **train}), root=tmp_path)

def test_completes_writes_run_folder_and_prints_nothing(lm, data, tmp_path, capfd):
    s = _session(lm, data, tmp_path)
    events = []
    s.add_listener(events.append)
    assert s.start().wait(180) == 'completed'
    out = capfd.readouterr()
    assert out.out == '', out.out                      # hazard 6: nothing printed into the cell
    info = s.run.info()
    assert info['status'] == 'completed' and info['data_fingerprint'] == data.fingerprint and 'torch' in info['versions']
    kinds = [e.kind for e in events]
    assert kinds[0] == 'start' and kinds[-1] == 'end' and kinds.count('log') >= 4
    logs = [e.data for e in events if e.kind == 'log' and 'loss' in e.data]
    assert all(k in logs[-1] for k in ('loss', 'learning_rate', 'grad_norm', 'tokens_per_s', 'eta_s'))
    assert (s.run.path/'adapter'/'adapter_model.safetensors').exists()
    card = (s.run.path/'adapter'/'README.md').read_text()
    assert data.fingerprint in card and '| step | loss |' in card

def test_kernel_stays_free_and_stop_is_cooperative(lm, data, tmp_path):
    s = _session(lm, data, tmp_path, max_steps=200)
    t0 = time.perf_counter(); s.start(); assert time.perf_counter() - t0 < 10 and s.running
    while not s.run.read('metrics').records: time.sleep(0.05)
    assert s.stop(timeout=120) == 'stopped'
    step = s.trainer.state.global_step
    assert 1 <= step < 200 and (s.run.path/'checkpoints'/f'checkpoint-{step}').exists()

def test_start_twice_stop_idle_and_rerun(lm, data, tmp_path):
    s = _session(lm, data, tmp_path, max_steps=100)
    with pytest.raises(TrainError, match='Nothing is training'): s.stop()
    s.start()
    with pytest.raises(TrainError, match='already training'): s.start()
    s.stop()
    with pytest.raises(TrainError, match='already run'): s.start()

def test_stop_file_from_another_process(lm, data, tmp_path):
    s = _session(lm, data, tmp_path, max_steps=200).start()
    while not s.run.read('metrics').records: time.sleep(0.05)
    subprocess.run([sys.executable, '-c', f"from lora_nb.runs import Run; Run.open({s.run.id!r}, {str(tmp_path)!r}).request_stop()"], check=True)
    assert s.wait(120) == 'stopped'

def test_nan_loss_stops_with_advice(lm, data, tmp_path):
    s = _session(lm, data, tmp_path, max_steps=20)
    def poison(e):
        if e.kind == 'start':
            with torch.no_grad(): next(p for n, p in s.lm.model.named_parameters() if 'lora_A' in n).fill_(float('nan'))
    s.add_listener(poison)
    assert s.start().wait(120) == 'failed'
    assert 'loss became nan' in s.error and 'learning_rate' in s.hint and s.trainer.state.global_step == 1
    assert s.run.info()['reason'] == 'nan' and not (s.run.path/'adapter').exists()

def test_a_failing_listener_does_not_stop_training(lm, data, tmp_path):
    s = _session(lm, data, tmp_path)
    s.add_listener(lambda e: 1 / 0)
    assert s.start().wait(180) == 'completed' and s.listener_errors

def test_bad_settings_and_resume_misuse(lm, data, tmp_path):
    with pytest.raises(SettingsError, match='not Linear layers'):
        Session(lm, data, LoraSettings(target_modules=['qkv_proj'])).start()
    s = _session(lm, data, tmp_path); s.start().wait(180)
    with pytest.raises(TrainError, match='already completed'): Session.resume(s.run.id, load_model(quantization='none'), data, root=tmp_path)
    other = prepare(RECS[:-2], lm.tokenizer, eval_size=4)
    run = Run.create({}, root=tmp_path)
    with pytest.raises(TrainError, match='not the data'): Session.resume(run.id, load_model(quantization='none'), other, root=tmp_path)

CHILD = textwrap.dedent('''
    import sys
    from lora_nb.models import load_model
    from lora_nb.data import prepare
    from lora_nb.train import LoraSettings, Session, TrainSettings
    sys.path.insert(0, {tests!r})
    from test_session import RECS
    lm = load_model(quantization='4bit')
    data = prepare(RECS, lm.tokenizer, eval_size=4)
    if sys.argv[1] == 'start':
        s = Session(lm, data, LoraSettings(r=4), TrainSettings(max_steps=12, learning_rate=1e-3, save_steps=2), root=sys.argv[2])
        s.start(); print(s.run.id, flush=True); s.wait()
    else:
        s = Session.resume(sys.argv[3], lm, data, root=sys.argv[2]); print(s.wait(), s.trainer.state.global_step, flush=True)
''')

def test_resume_after_a_crash_in_a_new_process(tmp_path):
    code = CHILD.format(tests=str(Path(__file__).parent))
    p = subprocess.Popen([sys.executable, '-c', code, 'start', str(tmp_path)], stdout=subprocess.PIPE, text=True)
    run_id = p.stdout.readline().strip()
    run = Run.open(run_id, tmp_path)
    deadline = time.time() + 240
    while not (run.path/'checkpoints'/'checkpoint-4').exists() and time.time() < deadline: time.sleep(0.1)
    p.send_signal(signal.SIGKILL); p.wait()                       # a crash, likely in the middle of writing checkpoint-4
    assert run.info()['status'] == 'running'
    done_before = max(r['step'] for r in run.read('metrics').records)
    r = subprocess.run([sys.executable, '-c', code, 'resume', str(tmp_path), run_id], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[:2] == ['completed', '12']
    steps = [m['step'] for m in run.read('metrics').records if 'loss' in m]
    assert steps[-1] == 12 and done_before >= 4 and run.info()['status'] == 'completed'
    assert (run.path/'adapter'/'adapter_model.safetensors').exists()

def test_partial_checkpoints_are_skipped(tmp_path):
    from lora_nb.train import last_complete_checkpoint
    for n, files in [(2, ['trainer_state.json', 'adapter_model.safetensors']), (4, ['adapter_model.safetensors']), (10, [])]:
        d = tmp_path/f'checkpoint-{n}'; d.mkdir()
        for f in files: (d/f).write_text('x')
    assert last_complete_checkpoint(tmp_path) == str(tmp_path/'checkpoint-2')
    assert last_complete_checkpoint(tmp_path/'none') is None
