"""The same YAML run on two machines under `accelerate launch`: node ranks 0 and 1 on this host over loopback (gloo,
CPU, one process per node), each node in its own folder with its own copy of the config and data, as two machines
that share no filesystem (hand-written).

What it shows: the first losses are those of one process at the same global batch; rank 0 alone writes the run
folder (node 1's folder is left exactly as it was: no runs root, no file changed, though its config names one); a
STOP file on node 0, SIGTERM to node 1's rank or Ctrl-C to node 0's launcher stops both ranks after the same step
(the checkpoint of that step holds both ranks' RNG states, which only a save on both ranks at that step gives), and
the adapter is saved once, on node 0; a stopped run resumes on both nodes from rank 0's checkpoint."""
import json, os, shutil, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest, yaml
from lora_nb.runs import Run
from conftest import ROOT, only_run as _only_run, run_losses as _losses, tree_digest, wait_for_loss

pytestmark = pytest.mark.slow   # four processes start torch: about 20 s a launch on 2 cores

BIN = Path(sys.executable).parent
CPU_DDP = ROOT/'examples'/'accelerate'/'cpu_ddp.yaml'
WORDS = ['loop', 'class', 'yield', 'raise', 'while', 'import', 'return', 'lambda']
RECS = [{'instruction': f'Reverse the word {w}.', 'output': w[::-1]} for w in WORDS]

def _node_folder(folder:Path) -> Path:
    "A machine's working folder: a run config on the embedded model (fp32, seeded, no dropout) and its data."
    folder.mkdir()
    (folder/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in RECS))
    cfg = dict(name='multinode', runs_root='runs', model=dict(dtype='float32'),
               data=dict(source='train.jsonl', eval_size=0), lora=dict(r=4, lora_dropout=0.0),
               train=dict(max_steps=4, per_device_train_batch_size=2, learning_rate=1e-3, warmup_steps=0, save_steps=2))
    (folder/'run.yaml').write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def _launch(folder:Path, rank:int, port:int, *args) -> subprocess.Popen:
    "`accelerate launch` of node `rank` of 2 (one process each) in `folder`: the README's multi-node command."
    cmd = [str(BIN/'accelerate'), 'launch', '--config_file', str(CPU_DDP), '--num_machines', '2', '--machine_rank',
           str(rank), '--num_processes', '2', '--main_process_ip', '127.0.0.1', '--main_process_port', str(port),
           '--num_cpu_threads_per_process', '1', '-m', 'lora_nb', 'train', 'run.yaml', *map(str, args)]
    return subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)

@pytest.fixture
def two_nodes(tmp_path):
    "`start(*args)`: launch nodes 1 and 0 in folders node1/ and node0/; the launchers are killed if a test fails."
    procs, nodes = [], (_node_folder(tmp_path/'node0'), _node_folder(tmp_path/'node1'))
    def start(*args):
        port = _free_port()
        p1, p0 = _launch(nodes[1], 1, port, *args), _launch(nodes[0], 0, port, *args)
        procs.extend([p1, p0])
        return p1, p0
    yield nodes, start
    for p in procs:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)

def _finish(*procs, timeout=240) -> list[tuple[str, str]]:
    "Each launcher's (stdout, stderr) once it ends; no rank may wait forever for the other."
    return [p.communicate(timeout=timeout) for p in procs]

def _why(*errs:str) -> str:
    "The lines of the launchers' stderr that say what went wrong (not the traceback frames)."
    return '\n'.join(l for e in errs for l in e.splitlines() if 'Error' in l or 'lora-nb:' in l)[-3000:]


def _both_ranks_saved(run:Run, step:int):
    "Checkpoint `step` is whole and holds both ranks' RNG states (gathered and written by rank 0)."
    ckpt = run.path/'checkpoints'/f'checkpoint-{step}'
    assert json.loads((ckpt/'trainer_state.json').read_text())['global_step'] == step
    assert sorted(p.name for p in ckpt.glob('rng_state*')) == ['rng_state_0.pth', 'rng_state_1.pth']

def test_two_nodes_train_the_same_first_losses_as_one_process(two_nodes):
    """2 nodes × 1 process × 2 examples against 1 process × 4 examples: the same examples each step and gradients
    averaged over the same tokens, so only the order of float sums in the all-reduce differs (the same set-up on one
    machine agrees to ~1e-7). rel 1e-4 leaves a wide margin and still fails for any other batch (> 1e-2)."""
    (node0, node1), start = two_nodes
    before = tree_digest(node1)
    p1, p0 = start()
    (out0, err0), (out1, err1) = _finish(p0, p1)
    assert (p0.returncode, p1.returncode) == (0, 0), _why(err0, err1)
    single = subprocess.run([str(BIN/'lora-nb'), 'train', 'run.yaml', '--set', 'runs_root=single', '--set',
                             'per_device_train_batch_size=4'], cwd=node0, capture_output=True, text=True, timeout=300,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert single.returncode == 0, single.stderr[-3000:]
    run, one = _only_run(node0/'runs'), _only_run(node0/'single')
    l2, l1 = _losses(run), _losses(one)
    assert [s for s, _ in l2] == [1, 2, 3, 4] == [s for s, _ in l1]   # one line per step: rank 1 logs nothing
    for (_, a), (_, b) in zip(l2, l1): assert a == pytest.approx(b, rel=1e-4)
    assert l2[-1][1] < l2[0][1] - 0.1                                 # and it trained
    info = run.info()
    assert (info['status'], info['world_size'], info['total_steps']) == ('completed', 2, 4)
    _both_ranks_saved(run, 4)
    assert (run.path/'adapter'/'adapter_model.safetensors').exists() and not (run.path/'.adapter.tmp').exists()
    assert out0.count('completed at step 4/4') == 1 and 'run ' not in out1   # node 0 reports, node 1 is quiet
    assert tree_digest(node1) == before and not (node1/'runs').exists()      # node 1 wrote nothing, made no folder

def _stopped(node0:Path, node1:Path, before:dict, out0:str):
    "The run stopped early on both ranks at one step, saved once, on node 0 only."
    run = _only_run(node0/'runs')
    info, step = run.info(), max(s for s, _ in _losses(run))
    assert info['status'] == 'stopped' and 1 <= step < 500 and info['world_size'] == 2
    _both_ranks_saved(run, step)
    assert (run.path/'adapter'/'adapter_model.safetensors').exists() and not (run.path/'STOP').exists()
    assert f'stopped at step {step}/500' in out0 and f'--resume {run.id}' in out0
    assert tree_digest(node1) == before and not (node1/'runs').exists()

def test_a_stop_file_on_node_0_stops_both_nodes(two_nodes):
    (node0, node1), start = two_nodes
    before = tree_digest(node1)
    p1, p0 = start('--set', 'max_steps=500')
    assert wait_for_loss(p0, node0/'runs', timeout=240), p0.communicate()[1][-3000:]
    _only_run(node0/'runs').request_stop()             # node 1 has no run folder: it learns it by the all-reduce
    (out0, err0), (_, err1) = _finish(p0, p1, timeout=120)
    assert (p0.returncode, p1.returncode) == (0, 0), _why(err0, err1)
    _stopped(node0, node1, before, out0)

def _worker(launcher:subprocess.Popen) -> int:
    "The pid of the one training process `accelerate launch` started."
    kids = Path(f'/proc/{launcher.pid}/task/{launcher.pid}/children').read_text().split()
    assert len(kids) == 1, kids
    return int(kids[0])

@pytest.mark.parametrize('how', ['SIGTERM to node 1 rank', 'Ctrl-C to node 0 launcher'])
def test_a_signal_to_one_node_stops_both(two_nodes, how):
    """SIGTERM straight to node 1's training process (as `kill` or SLURM's time limit sends it), or SIGINT to node 0's
    launcher (Ctrl-C in its terminal; torchrun passes it on to its rank, then exits 130 as it always does after a
    signal). The other node stops at the same step without a signal of its own."""
    (node0, node1), start = two_nodes
    before = tree_digest(node1)
    p1, p0 = start('--set', 'max_steps=500')
    assert wait_for_loss(p0, node0/'runs', timeout=240), p0.communicate()[1][-3000:]
    if how.startswith('SIGTERM'): os.kill(_worker(p1), signal.SIGTERM)
    else: os.kill(p0.pid, signal.SIGINT)
    (out0, err0), (_, err1) = _finish(p0, p1, timeout=120)
    want = (0, 0) if how.startswith('SIGTERM') else (130, 0)
    assert (p0.returncode, p1.returncode) == want, _why(err0, err1)
    _stopped(node0, node1, before, out0)

def _wait_for_step(proc:subprocess.Popen, run:Run, after:int, timeout:float=240):
    "Wait until `run` logs a loss past step `after` while `proc` runs."
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(s > after for s, _ in _losses(run)): return
        time.sleep(0.2)
    raise AssertionError(f"no step past {after}: {proc.communicate()[1][-3000:]}")

def test_a_stopped_run_resumes_on_two_nodes_from_rank_0s_checkpoint(two_nodes):
    """Resume reads the checkpoint on every rank: with the run folder copied to node 1 (as on machines without a
    shared filesystem), both ranks continue from the checkpoint rank 0 wrote, each with its own RNG state from it, and
    node 1's copy is only read."""
    (node0, node1), start = two_nodes
    p1, p0 = start('--set', 'max_steps=500')
    assert wait_for_loss(p0, node0/'runs', timeout=240), p0.communicate()[1][-3000:]
    run = _only_run(node0/'runs')
    run.request_stop()
    (_, err0), (_, err1) = _finish(p0, p1, timeout=120)
    assert (p0.returncode, p1.returncode) == (0, 0), _why(err0, err1)
    stopped_at = max(s for s, _ in _losses(run))
    shutil.copytree(node0/'runs', node1/'runs')
    before = tree_digest(node1)
    p1, p0 = start('--resume', run.id)
    _wait_for_step(p0, run, stopped_at)
    run.request_stop()
    (out0, err0), (_, err1) = _finish(p0, p1, timeout=120)
    assert (p0.returncode, p1.returncode) == (0, 0), _why(err0, err1)
    info, steps = run.info(), [s for s, _ in _losses(run)]
    assert info['resumed_from'] == f'checkpoint-{stopped_at}' and info['status'] == 'stopped'
    assert steps == list(range(1, max(steps) + 1)) and max(steps) > stopped_at   # continued, each step logged once
    _both_ranks_saved(run, max(steps))
    assert f'resuming run {run.id}' in out0 and tree_digest(node1) == before
