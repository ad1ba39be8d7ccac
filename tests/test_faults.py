"""Nothing lost: one writer per run, torn lines, honest status, durable folders; in this process and in others
(hand-written). The Ctrl-C, SIGKILL and fault-injection tests run real `lora-nb` processes."""
import json, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
from safetensors import safe_open
from lora_nb.lab.runview import RunIndex, run_detail
from lora_nb.models import load_model
from lora_nb.runs import Run, RunBusyError, list_runs, saved_adapters
from lora_nb.train import LoraSettings, Session, TrainSettings
from lora_nb.trainer import checkpoint_problem, checkpoints
from conftest import RECS


def _session(lm, data, root, **train):
    return Session(lm, data, LoraSettings(r=4),
                   TrainSettings(**{'max_steps': 4, 'learning_rate': 1e-3, 'save_steps': 2, 'logging_steps': 1,
                                    **train}), root=root)

def _stopped_run(lm, data, root, at:int=2, **train) -> Session:
    "A run stopped (by its own listener) at step `at`, with a checkpoint there."
    s = _session(lm, data, root, **train)
    s.add_listener(lambda e: s._stop.set() if e.kind == 'log' and e.step == at else None)
    assert s.start().wait(180) == 'stopped'
    return s

def _statuses(run:Run) -> dict:
    "The run's status as every reader shows it: `lora-nb runs`' rows, the server's index and run view, the Studio."
    root = run.path.parent
    row = {r['id']: r for r in list_runs(root)}[run.id]
    page = RunIndex(root).page()
    return dict(runs=row['status'], index=[r['status'] for r in page['runs'] if r['id'] == run.id][0],
                detail=run_detail(run.id, root)['summary']['status'], active=[r['id'] for r in page['active']])

HOLD = ("from lora_nb.runs import Run; import sys, time; Run.open(sys.argv[1], sys.argv[2]).lock(); "
        "print('locked', flush=True); time.sleep(600)")

# --- one writer per run --------------------------------------------------------------------------------------------

def test_a_run_held_by_a_live_process_is_refused_and_a_dead_ones_taken_over(lm, data, tmp_path):
    s = _stopped_run(lm, data, tmp_path)
    holder = subprocess.Popen([sys.executable, '-c', HOLD, s.run.id, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        s.run.update(status='running')                    # as the holder would write
        with pytest.raises(RunBusyError, match=f'being written by process {holder.pid}'):
            Session.resume(s.run.id, load_model(quantization='none'), data, root=tmp_path)
        assert s.run.holder()['pid'] == holder.pid        # the refusal changed nothing
        assert _statuses(s.run) == dict(runs='running', index='running', detail='running', active=[s.run.id])
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # dead: shown at once (not after ten minutes), and its lock is taken over
    assert _statuses(s.run) == dict(runs='crashed', index='crashed', detail='crashed', active=[])
    r = Session.resume(s.run.id, load_model(quantization='none'), data, root=tmp_path)
    assert r.wait(180) == 'completed' and s.run.holder() is None
    assert _statuses(s.run)['runs'] == 'completed'

def test_a_second_session_in_the_same_process_is_refused(lm, data, tmp_path):
    s = _session(lm, data, tmp_path, max_steps=200, save_steps=1).start()
    try:
        while not checkpoints(s.run.path/'checkpoints'): time.sleep(0.05)
        with pytest.raises(RunBusyError, match='this process'):
            Session.resume(s.run.id, load_model(quantization='none'), data, root=tmp_path)
    finally: s.stop(timeout=120)
    steps = [r['step'] for r in s.run.read('metrics').records if 'loss' in r]
    assert steps == sorted(set(steps)) and s.run.holder() is None

# --- torn lines, honest status, whole folders ----------------------------------------------------------------------

def test_a_torn_metrics_line_does_not_swallow_the_next_record(lm, data, tmp_path):
    s = _stopped_run(lm, data, tmp_path)
    with open(s.run.path/'metrics.jsonl', 'a') as f: f.write('{"step": 3, "loss": 1.')   # killed mid-line
    r = Session.resume(s.run.id, load_model(quantization='none'), data, root=tmp_path)
    assert r.wait(180) == 'completed'
    m = r.run.read('metrics')
    assert len(m.corrupt) == 1 and not m.partial                  # the torn line stays one bad line
    assert [x['step'] for x in m.records if 'loss' in x][-2:] == [3, 4]   # step 3 after the resume is not lost

def test_votes_are_rewritten_whole_and_survive_a_torn_line(tmp_path):
    run = Run.create({}, root=tmp_path)
    run.log('votes', {'winner': 'a'})
    with open(run.path/'votes.jsonl', 'a') as f: f.write('{"winner": "b", "pr')
    run.log('votes', {'winner': 'tie'})
    v = run.read('votes')
    assert [x['winner'] for x in v.records] == ['a', 'tie'] and len(v.corrupt) == 1
    assert not list(run.path.glob('.*.tmp'))

def test_reaching_max_steps_while_a_stop_is_pending_is_completed(lm, data, tmp_path):
    s = _session(lm, data, tmp_path)
    s.add_listener(lambda e: s.run.request_stop() if e.kind == 'log' and e.step == 4 else None)
    assert s.start().wait(180) == 'completed'
    info = s.run.info()
    assert (info['status'], info['reason']) == ('completed', None) and not s.run.stop_requested
    assert _statuses(s.run)['runs'] == 'completed' and s.run.holder() is None

def test_checkpoints_and_the_adapter_are_published_whole(lm, data, tmp_path):
    s = _session(lm, data, tmp_path, max_steps=6)
    assert s.start().wait(180) == 'completed'
    ck = s.run.path/'checkpoints'
    assert [p.name for p in checkpoints(ck)] == ['checkpoint-6', 'checkpoint-4']   # rotation kept the two newest
    assert all(checkpoint_problem(p) is None for p in checkpoints(ck))
    assert not [p.name for p in ck.iterdir() if p.name.startswith('.')]            # no staging left behind
    assert not [p.name for p in s.run.path.iterdir() if p.name.startswith('.')]
    with safe_open(str(s.run.path/'adapter'/'adapter_model.safetensors'), 'pt') as f: assert list(f.keys())
    assert saved_adapters(tmp_path)[0]['status'] == 'completed'

# --- real processes: the terminal -----------------------------------------------------------------------------------

BIN = Path(sys.executable).parent

def _config(folder:Path, records:list=RECS[:8], **train) -> Path:
    (folder/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
    cfg = dict(name='cli', runs_root='runs', model=dict(quantization='none'),
               data=dict(source='train.jsonl', eval_size=0), lora=dict(r=4, lora_dropout=0.0),
               train={'max_steps': 8, 'per_device_train_batch_size': 2, 'learning_rate': 1e-3, 'warmup_steps': 0,
                      'save_steps': 2, 'logging_steps': 1, **train})
    (folder/'run.yaml').write_text(json.dumps(cfg))   # JSON is YAML
    return folder/'run.yaml'

def _train(*args, cwd=None) -> subprocess.Popen:
    return subprocess.Popen([str(BIN/'lora-nb'), 'train', *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)

def _only_run(root:Path, p:subprocess.Popen|None=None, timeout:float=240) -> Run:
    deadline = time.time() + timeout
    while not list(root.glob('*/run.json')):
        assert p is None or p.poll() is None, p.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.05)
    return Run(next(root.glob('*/run.json')).parent)

def _wait_step(run:Run, step:int, p:subprocess.Popen, timeout:float=240):
    "Wait until `run` has logged `step`."
    deadline = time.time() + timeout
    while max((r.get('step', 0) for r in run.read('metrics').records if 'loss' in r), default=0) < step:
        assert p.poll() is None, p.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.02)

def _run_printed(out:str, cwd:Path) -> subprocess.CompletedProcess:
    "Run the resume command `lora-nb train` printed, exactly as printed."
    import shlex
    line = next(l for l in out.splitlines() if l.strip().startswith('resume:'))
    cmd = shlex.split(line.split('resume:', 1)[1].split('   (')[0])
    assert cmd[0] == 'lora-nb', line
    return subprocess.run([str(BIN/'lora-nb'), *cmd[1:]], capture_output=True, text=True, timeout=300, cwd=cwd)

@pytest.mark.slow
def test_a_second_lora_nb_train_on_a_training_run_is_refused(tmp_path):
    cfg = _config(tmp_path, max_steps=400)
    p = _train(cfg)
    try:
        run = _only_run(tmp_path/'runs', p)
        _wait_step(run, 2, p)
        r = subprocess.run([str(BIN/'lora-nb'), 'train', str(cfg), '--resume', run.id], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 2 and f'being written by process {p.pid}' in r.stderr, r.stderr[-2000:]
        assert p.poll() is None
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == 0, err[-2000:]
    steps = [m['step'] for m in run.read('metrics').records if 'loss' in m]
    assert steps == list(range(1, len(steps) + 1)) and run.info()['status'] == 'stopped'   # one writer only

@pytest.mark.slow
def test_ctrl_c_twice_says_it_is_saving_and_stops_with_a_checkpoint(tmp_path):
    cfg = _config(tmp_path, RECS, max_steps=400, gradient_accumulation_steps=12)   # long steps: presses land mid-step
    p = _train(cfg)
    try:
        run = _only_run(tmp_path/'runs', p)
        out, err = _press_ctrl_c(p, run, after=1, times=2)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == 0 and 'terminate called' not in err, err[-3000:]
    assert 'still saving' in out and run.info()['status'] == 'stopped', out
    step = max(m['step'] for m in run.read('metrics').records if 'loss' in m)
    assert checkpoint_problem(run.path/'checkpoints'/f'checkpoint-{step}') is None
    assert (run.path/'adapter'/'adapter_config.json').exists() and run.holder() is None

def _press_ctrl_c(p, run, after:int, times:int) -> tuple[str, str]:
    "Press Ctrl-C `times` times once `run` has logged step `after`; the process's output when it has ended."
    _wait_step(run, after, p)
    for _ in range(times):   # all before the step ends, however fast this machine is (a step is long: see the configs)
        p.send_signal(signal.SIGINT)
        time.sleep(0.1)
    return p.communicate(timeout=180)

@pytest.mark.slow
def test_ctrl_c_three_times_interrupts_and_the_printed_command_resumes(tmp_path):
    cfg = _config(tmp_path, RECS, gradient_accumulation_steps=48)
    p = _train(cfg, '--set', 'max_steps=6', '--set', 'lr_scheduler_type=constant', '--set',
               f'runs_root={tmp_path/"elsewhere"}', cwd=tmp_path)
    try:
        run = _only_run(tmp_path/'elsewhere', p)
        out, err = _press_ctrl_c(p, run, after=3, times=3)   # checkpoint-2 is whole
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == 130 and 'terminate called' not in err, (p.returncode, err[-3000:])
    info = run.info()
    assert (info['status'], info['resume_checkpoint']) == ('interrupted', 'checkpoint-2'), info
    assert run.holder() is None and _statuses(run)['runs'] == 'interrupted'
    r = _run_printed(out, tmp_path)                        # no --set max_steps / lr_scheduler_type needed
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'completed at step 6/6' in r.stdout and 'keeps its own settings' in r.stdout, r.stdout
    info = run.info()
    assert info['status'] == 'completed' and info['settings']['train']['lr_scheduler_type'] == 'constant'
    lrs = {m['learning_rate'] for m in run.read('metrics').records if 'learning_rate' in m}
    assert lrs == {1e-3}                                   # the constant schedule, kept on resume

@pytest.mark.slow
def test_a_killed_run_shows_crashed_at_once_and_resumes(tmp_path):
    cfg = _config(tmp_path, max_steps=12)
    p = _train(cfg)
    run = _only_run(tmp_path/'runs', p)
    _wait_step(run, 3, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert run.info()['status'] == 'running'
    assert _statuses(run) == dict(runs='crashed', index='crashed', detail='crashed', active=[])
    r = subprocess.run([str(BIN/'lora-nb'), 'runs', '--runs-root', tmp_path/'runs'], capture_output=True, text=True)
    row = r.stdout.splitlines()[1].split()
    assert (row[0], row[2]) == (run.id, 'crashed'), r.stdout          # id, name, status, …
    r = subprocess.run([str(BIN/'lora-nb'), 'train', str(cfg), '--resume', run.id], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and 'completed at step 12/12' in r.stdout, r.stderr[-3000:]
    assert _statuses(run)['runs'] == 'completed' and run.holder() is None

# --- disk full, read-only root ---------------------------------------------------------------------------------------

def test_a_runs_root_that_cant_be_written_is_refused_before_training(lm, data, tmp_path, capsys, monkeypatch):
    import lora_nb.models
    from lora_nb.cli import main
    from lora_nb.runs import RunError
    for bad in ('/proc/lora-nb-runs', tmp_path/'a-file'):
        (tmp_path/'a-file').write_text('not a folder')
        with pytest.raises(RunError, match="can't be written"): _session(lm, data, bad).start()
        assert not hasattr(lm.model, 'peft_config')                   # the model was not touched
    cfg = _config(tmp_path)
    loads = []
    # `run_config` imports the engine when it builds a run: the loader it would call records, never loads
    monkeypatch.setattr(lora_nb.models, 'load_model', lambda *a, **kw: loads.append(kw))
    assert main(['train', str(cfg), '--set', 'runs_root=/proc/lora-nb-runs']) == 2
    assert "can't be written" in capsys.readouterr().err and loads == []     # refused before the model is loaded

EFBIG = textwrap.dedent('''
    import json, resource, sys
    sys.path.insert(0, {tests!r})
    from test_faults import RECS
    from lora_nb.data import prepare
    from lora_nb.models import load_model
    from lora_nb.train import Session
    lm = load_model(quantization='none')
    data = prepare(RECS, lm.tokenizer, eval_size=4)
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))   # a full disk, for files over 64 KiB
    s = Session.resume(sys.argv[2], lm, data, root=sys.argv[1], background=False)
    print(json.dumps(dict(status=s.status, error=s.error, hint=s.hint)))
''')

@pytest.mark.slow
def test_out_of_space_while_saving_a_checkpoint_stops_with_the_last_whole_one_intact(lm, data, tmp_path):
    s = _stopped_run(lm, data, tmp_path, max_steps=6)
    before = {p.name: p.read_bytes() for p in (s.run.path/'checkpoints'/'checkpoint-2').iterdir()}
    r = subprocess.run([sys.executable, '-c', EFBIG.format(tests=str(Path(__file__).parent)), str(tmp_path),
                        s.run.id], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    end = json.loads(r.stdout.splitlines()[-1])
    assert end['status'] == 'failed' and 'Out of disk space' in end['error'] and 'checkpoint-2' in end['hint'], end
    info = s.run.info()
    assert (info['status'], info['reason']) == ('failed', 'disk') and s.run.holder() is None
    assert {p.name: p.read_bytes() for p in (s.run.path/'checkpoints'/'checkpoint-2').iterdir()} == before
    assert [p.name for p in checkpoints(s.run.path/'checkpoints')] == ['checkpoint-2']   # no half checkpoint-4
    assert Session.resume(s.run.id, load_model(quantization='none'), data, root=tmp_path).wait(180) == 'completed'
