"""Fault injection: SIGKILL at random points of every write path of a run folder (metrics, samples, votes, checkpoints,
the adapter, run.json), then every reader and a resume (hand-written).

Each trial is a real training process killed at a random moment. To keep 30+ trials within about a minute, the
processes are forked from one that has imported torch and lora_nb but run nothing yet (no OpenMP team to inherit);
each child loads the model, trains the real trainer, and is killed with SIGKILL by this test."""
import contextlib, io, json, os, random, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
from safetensors import safe_open
from lora_nb.cli import main
from lora_nb.lab.runview import RunIndex, run_detail
from lora_nb.runs import Run, list_runs
from lora_nb.trainer import checkpoint_problem, checkpoints, last_complete_checkpoint

SAVE_STEPS, MAX_STEPS = 2, 10

ZYGOTE = textwrap.dedent('''
    import json, os, sys, threading, time
    from lora_nb.models import load_model
    from lora_nb.data import prepare
    from lora_nb.runs import Run
    from lora_nb.train import LoraSettings, Session, TrainSettings
    WORDS = ['loop', 'class', 'yield', 'raise', 'while', 'import', 'return', 'lambda']
    RECS = [{'instruction': f'Reverse the word {w}.', 'output': w[::-1]} for w in WORDS * 2]

    def child(cmd, root, run_id, ready):
        lm = load_model(quantization='none')
        data = prepare(RECS, lm.tokenizer, eval_size=2)
        if cmd == 'start':
            train = TrainSettings(max_steps=%(max_steps)d, learning_rate=1e-3, save_steps=%(save_steps)d,
                                  logging_steps=1, probe_steps=3, max_new_tokens=4)
            s = Session(lm, data, LoraSettings(r=4), train, probes=['Reverse the word for.'], root=root).start()
        else: s = Session.resume(run_id, lm, data, root=root)
        with open(ready + '.tmp', 'w') as f: f.write(s.run.id)
        os.replace(ready + '.tmp', ready)      # whole, or not there yet
        def side():      # a person voting and a panel noting things in run.json while it trains
            i = 0
            while s.running:
                s.run.log('votes', {'a': 'base', 'b': 'tuned', 'winner': 'tuned', 'i': i, 'pad': 'v' * 300})
                s.run.update(note=i)
                i += 1
                time.sleep(0.01)
        threading.Thread(target=side, daemon=True).start()
        s.wait()
        os._exit(0 if s.status == 'completed' else 3)

    for line in sys.stdin:
        msg = json.loads(line)
        if msg['cmd'] == 'reap':
            _, status = os.waitpid(msg['pid'], 0)
            print(json.dumps({'status': status}), flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            try: child(msg['cmd'], msg['root'], msg.get('run'), msg['ready'])
            finally: os._exit(4)
        print(json.dumps({'pid': pid}), flush=True)
''') % dict(max_steps=MAX_STEPS, save_steps=SAVE_STEPS)

class Zygote:
    "A process that has imported torch and lora_nb and forks training processes on request."
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, '-c', ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    def ask(self, **msg) -> dict:
        self.p.stdin.write(json.dumps(msg) + '\n')
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())
    def close(self):
        self.p.stdin.close()
        self.p.wait(30)

def _read_everything(root:Path, run:Run) -> dict:
    "Every reader on the folder (raising on any error): `lora-nb runs`, the server's index and run view."
    out = io.StringIO()
    with contextlib.redirect_stdout(out): assert main(['runs', '--json', '--runs-root', str(root)]) == 0
    rows = {r['id']: r for r in json.loads(out.getvalue())}
    assert {r['id']: r for r in list_runs(root)}.keys() == rows.keys()
    page = RunIndex(root).page(0, 500)
    detail = run_detail(run.id, root)
    listed = [r for r in page['runs'] if r['id'] == run.id][0]
    assert detail['summary']['status'] == rows[run.id]['status'] == listed['status']
    run.info()
    return rows[run.id]

def _adapter_state(run:Run) -> str:
    "'absent', 'whole' or 'half' (a folder that does not load)."
    a = run.path/'adapter'
    if not a.exists(): return 'absent'
    try:
        json.loads((a/'adapter_config.json').read_text())
        with safe_open(str(a/'adapter_model.safetensors'), 'pt') as f: list(f.keys())
        return 'whole'
    except Exception: return 'half'

def _logged(run:Run) -> int:
    return max((r['step'] for r in run.read('metrics').records if 'loss' in r), default=0)

@pytest.mark.slow
def test_sigkill_at_random_points_never_loses_more_than_a_save_interval(tmp_path):
    rng, z = random.Random(13), Zygote()
    trials, figures, run = 0, dict(trials=0, killed=0, completed=0, readable=0, max_steps_lost=0, half_adapters=0,
                                   half_checkpoints=0, torn_metric_lines=0, corrupt_votes=0, statuses={},
                                   mid_checkpoint=0, mid_adapter=0), None
    t0 = time.time()
    try:
        while trials < 32 and time.time() - t0 < 600:
            resumable = run is not None and run.info().get('status') != 'completed' and \
                last_complete_checkpoint(run.path/'checkpoints')
            before = last_complete_checkpoint(run.path/'checkpoints') if resumable else None
            ready = tmp_path/f'ready-{trials}'
            pid = z.ask(cmd='resume' if resumable else 'start', root=str(tmp_path), run=run.id if resumable else None,
                        ready=str(ready))['pid']
            deadline = time.time() + 120
            while not ready.exists():
                assert time.time() < deadline, 'the training process did not start'
                time.sleep(0.01)
            run = Run(tmp_path/ready.read_text())
            if resumable:   # the resume continued from the newest whole checkpoint: lost what came after it
                lost = figures.pop('pending_logged') - int(Path(before).name.split('-')[1])
                figures['max_steps_lost'] = max(figures['max_steps_lost'], lost)
                assert lost <= SAVE_STEPS, (lost, before)
            time.sleep(rng.uniform(0, 1.5))
            with contextlib.suppress(ProcessLookupError): os.kill(pid, signal.SIGKILL)
            code = z.ask(cmd='reap', pid=pid)['status']
            trials += 1
            killed = os.WIFSIGNALED(code)
            figures['killed' if killed else 'completed'] += 1
            row = _read_everything(tmp_path, run)
            figures['readable'] += 1
            figures['statuses'][row['status']] = figures['statuses'].get(row['status'], 0) + 1
            assert row['status'] in (('crashed', 'completed', 'created') if killed else ('completed',)), row
            assert row['status'] != 'running'
            adapter = _adapter_state(run)
            figures['mid_checkpoint'] += (run.path/'checkpoints'/'.staging').exists()   # killed while saving one
            figures['mid_adapter'] += (run.path/'.adapter.tmp').exists()
            figures['half_adapters'] += adapter == 'half'
            figures['half_checkpoints'] += sum(checkpoint_problem(p) is not None
                                               for p in checkpoints(run.path/'checkpoints'))
            figures['torn_metric_lines'] += len(run.read('metrics').corrupt)
            figures['corrupt_votes'] += len(run.read('votes').corrupt)
            figures['pending_logged'] = _logged(run)
            if row['status'] == 'completed': assert adapter == 'whole'
        figures['trials'] = trials
        figures.pop('pending_logged', None)
        figures['seconds'] = round(time.time() - t0)
        print('fault injection:', json.dumps(figures))
        assert trials >= 30 and figures['readable'] == trials
        assert figures['half_adapters'] == figures['half_checkpoints'] == figures['corrupt_votes'] == 0
    finally: z.close()

@pytest.mark.slow
def test_two_trainings_in_one_root_while_four_readers_poll_the_server(tmp_path):
    import threading
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
    from labtest import Jupyter
    from lora_nb.data import prepare
    from lora_nb.models import load_model
    from lora_nb.runs import RunBusyError
    from lora_nb.train import Session
    root = tmp_path/'runs'
    stop, polls, errors, seen = threading.Event(), [0], [], set()
    def reader(srv):
        while not stop.is_set():
            try:
                code, page = srv.json('GET', 'lora-nb/runs')
                assert code == 200, (code, page)
                for r in page['runs']:
                    seen.add((r['id'], r['status']))
                    code, d = srv.json('GET', f"lora-nb/runs/{r['id']}")
                    assert code == 200, (code, d)
                polls[0] += 1
            except Exception as e: errors.append(repr(e))
    with Jupyter('server', tmp_path, env={'LORA_NB_RUNS': ''}) as srv:
        z = Zygote()
        readers = [threading.Thread(target=reader, args=(srv,)) for _ in range(4)]
        try:
            for t in readers: t.start()
            pids = [z.ask(cmd='start', root=str(root), ready=str(tmp_path/f'ready-{i}'))['pid'] for i in range(2)]
            deadline = time.time() + 120
            while not all((tmp_path/f'ready-{i}').exists() for i in range(2)):
                assert time.time() < deadline, 'the training processes did not start'
                time.sleep(0.01)
            ids = [(tmp_path/f'ready-{i}').read_text() for i in range(2)]
            lm = load_model(quantization='none')
            data = prepare([{'instruction': f'Reverse the word {w}.', 'output': w[::-1]}
                            for w in ['loop', 'class', 'yield', 'raise', 'while', 'import', 'return', 'lambda'] * 2],
                           lm.tokenizer, eval_size=2)
            refused = 0
            for rid in ids:      # a second writer for each, while it trains
                with pytest.raises(RunBusyError, match='being written by process'):
                    Session.resume(rid, lm, data, root=root)
                refused += 1
            codes = [z.ask(cmd='reap', pid=pid)['status'] for pid in pids]
        finally:
            stop.set()
            for t in readers: t.join(60)
            z.close()
    print('concurrency:', json.dumps(dict(writers_refused=refused, reader_polls=polls[0], reader_errors=len(errors))))
    assert not errors, errors[:3]
    assert codes == [0, 0] and polls[0] >= 8
    assert {s for i, s in seen if i in ids} <= {'created', 'running', 'completed'}   # never crashed or stale
    for rid in ids:
        steps = [m['step'] for m in Run(root/rid).read('metrics').records if 'loss' in m]
        assert steps == list(range(1, MAX_STEPS + 1)) and Run(root/rid).info()['status'] == 'completed'
