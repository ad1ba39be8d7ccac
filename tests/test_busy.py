"""A busy machine: training sizes its threads from the cores other processes leave free (hand-written)."""
import json, subprocess, sys, time
import pytest, torch
from lora_nb.settings import LoraSettings, TrainSettings
from lora_nb.threads import CpuShare, cores
from lora_nb.train import Session

SPIN = "import time\nend = time.time() + 600\nwhile time.time() < end: pass"


@pytest.fixture
def others():
    "As many spinning processes as cores: the machine is taken."
    procs = [subprocess.Popen([sys.executable, '-c', SPIN]) for _ in range(cores())]
    time.sleep(1.0)
    yield procs
    for p in procs: p.kill()


def test_cpu_share_sees_other_processes(others):
    share = CpuShare()
    share.sample()
    assert share.others >= cores() - 0.6 and share.busy and share.threads() == 1, share


def test_training_on_a_busy_machine_uses_one_thread_and_says_so(lm, data, tmp_path, others, monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.delenv('LORA_NB_THREADS', raising=False)
    before = torch.get_num_threads()
    s = Session(lm, data, LoraSettings(r=4), TrainSettings(max_steps=3, learning_rate=1e-3, save_steps=100),
                root=tmp_path).start()
    assert s.wait(600) == 'completed', s.error
    logs = [json.loads(l) for l in (s.run.path/'metrics.jsonl').read_text().splitlines()]
    steps = [r for r in logs if 'loss' in r]
    assert steps and all(r['threads'] == 1 and r['cpu_others'] >= 0.5 for r in steps), steps
    notes = [e.data['text'] for e in s.events if e.kind == 'note']
    assert any('machine is busy' in n and '1 thread' in n for n in notes), notes
    assert torch.get_num_threads() == before   # the process's count is given back


def test_a_pinned_thread_count_is_kept(lm, data, tmp_path, others, monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setenv('LORA_NB_THREADS', '2')
    s = Session(lm, data, LoraSettings(r=4), TrainSettings(max_steps=2, learning_rate=1e-3, save_steps=100),
                root=tmp_path).start()
    assert s.wait(600) == 'completed', s.error
    logs = [json.loads(l) for l in (s.run.path/'metrics.jsonl').read_text().splitlines()]
    assert all(r['threads'] == 2 for r in logs if 'loss' in r)
