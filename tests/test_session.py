"""Training sessions: stop, resume after a crash in a new process, NaN, bad calls, no printing from the thread
(hand-written)."""
import signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest, torch
from lora_nb.errors import SettingsError
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.runs import Run
from lora_nb.train import LoraSettings, Session, TrainError, TrainSettings
from conftest import RECS, tree_digest


def _session(lm, data, tmp_path, **train):
    return Session(lm, data, LoraSettings(r=4),
                   TrainSettings(**{'max_steps': 4, 'learning_rate': 1e-3, 'save_steps': 2, **train}), root=tmp_path)

def test_completes_writes_run_folder_and_prints_nothing(lm, data, tmp_path, capfd):
    s = _session(lm, data, tmp_path)
    events = []
    s.add_listener(events.append)
    assert s.start().wait(180) == 'completed'
    out = capfd.readouterr()
    assert out.out == '', out.out                      # hazard 6: nothing printed into the cell
    info = s.run.info()
    assert info['status'] == 'completed' and info['data_fingerprint'] == data.fingerprint
    assert 'torch' in info['versions']
    kinds = [e.kind for e in events]
    assert kinds[0] == 'start' and kinds[-1] == 'end' and kinds.count('log') >= 4
    logs = [e.data for e in events if e.kind == 'log' and 'loss' in e.data]
    assert all(k in logs[-1] for k in ('loss', 'learning_rate', 'grad_norm', 'tokens_per_s', 'eta_s'))
    assert (s.run.path/'adapter'/'adapter_model.safetensors').exists()
    card = (s.run.path/'adapter'/'README.md').read_text()
    assert data.fingerprint in card and '| step | loss |' in card

def test_kernel_stays_free_and_stop_is_cooperative(lm, data, tmp_path):
    s = _session(lm, data, tmp_path, max_steps=200)
    t0 = time.perf_counter()
    s.start()
    assert time.perf_counter() - t0 < 10 and s.running
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
    subprocess.run([sys.executable, '-c', f"from lora_nb.runs import Run; Run.open({s.run.id!r}, "
                                          f"{str(tmp_path)!r}).request_stop()"], check=True)
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
    s = _session(lm, data, tmp_path)
    s.start().wait(180)
    with pytest.raises(TrainError,
                       match='already completed'): Session.resume(s.run.id, load_model(quantization='none'), data,
                                                                  root=tmp_path)
    other = prepare(RECS[:-2], lm.tokenizer, eval_size=4)
    run = Run.create({}, root=tmp_path)
    with pytest.raises(TrainError,
                       match='not the data'): Session.resume(run.id, load_model(quantization='none'), other,
                                                             root=tmp_path)

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
        train = TrainSettings(max_steps=12, learning_rate=1e-3, save_steps=2)
        s = Session(lm, data, LoraSettings(r=4), train, root=sys.argv[2])
        s.start(); print(s.run.id, flush=True); s.wait()
    else:
        s = Session.resume(sys.argv[3], lm, data, root=sys.argv[2])
        print(s.wait(), s.trainer.state.global_step, flush=True)
''')

@pytest.mark.slow
def test_resume_after_a_crash_in_a_new_process(tmp_path):
    code = CHILD.format(tests=str(Path(__file__).parent))
    p = subprocess.Popen([sys.executable, '-c', code, 'start', str(tmp_path)], stdout=subprocess.PIPE, text=True)
    run_id = p.stdout.readline().strip()
    run = Run.open(run_id, tmp_path)
    deadline = time.time() + 240
    while not (run.path/'checkpoints'/'checkpoint-4').exists() and time.time() < deadline: time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()                       # a crash, likely in the middle of writing checkpoint-4
    assert run.info()['status'] == 'running'
    done_before = max(r['step'] for r in run.read('metrics').records)
    r = subprocess.run([sys.executable, '-c', code, 'resume', str(tmp_path), run_id], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[:2] == ['completed', '12']
    steps = [m['step'] for m in run.read('metrics').records if 'loss' in m]
    assert steps[-1] == 12 and done_before >= 4 and run.info()['status'] == 'completed'
    assert (run.path/'adapter'/'adapter_model.safetensors').exists()

def test_partial_checkpoints_are_skipped(tmp_path):
    from safetensors.torch import save_file
    from lora_nb.trainer import last_complete_checkpoint
    for n, files in [(2, ['trainer_state.json', 'adapter_model.safetensors']), (4, ['adapter_model.safetensors']),
                     (10, [])]:
        d = tmp_path/f'checkpoint-{n}'
        d.mkdir()
        if 'trainer_state.json' in files: (d/'trainer_state.json').write_text('{"global_step": 2}')
        if 'adapter_model.safetensors' in files: save_file({'w': torch.zeros(2)}, str(d/'adapter_model.safetensors'))
    assert last_complete_checkpoint(tmp_path) == str(tmp_path/'checkpoint-2')
    assert last_complete_checkpoint(tmp_path/'none') is None

def test_settings_refused_where_they_are_built():
    for make, name in [(lambda: LoraSettings(r=0), '`r`'), (lambda: LoraSettings(r=-4), '`r`'),
                       (lambda: TrainSettings(learning_rate=0), '`learning_rate`'),
                       (lambda: TrainSettings(learning_rate=-1e-4), '`learning_rate`'),
                       (lambda: TrainSettings(per_device_train_batch_size=0), '`per_device_train_batch_size`')]:
        with pytest.raises(SettingsError, match=name) as e: make()
        assert e.value.where and 'must' in str(e.value)

def test_unknown_target_module_lists_the_real_ones(lm, data, tmp_path):
    with pytest.raises(SettingsError, match='not Linear layers') as e:
        Session(lm, data, LoraSettings(target_modules=['q_proj', 'attn']), root=tmp_path).start()
    assert "'q_proj'" in e.value.hint and "'down_proj'" in e.value.hint and "['attn']" in str(e.value)
    assert not list(tmp_path.iterdir())                      # nothing was created

def test_a_second_session_on_a_model_that_is_training(lm, data, tmp_path):
    first = _session(lm, data, tmp_path, max_steps=200).start()
    with pytest.raises(TrainError, match='training in another session') as e: _session(lm, data, tmp_path).start()
    assert first.run.id in str(e.value) and first.running
    assert first.stop(timeout=120) == 'stopped'

def test_resume_refuses_another_base_model_and_folders_that_are_not_runs(lm, data, tmp_path):
    from lora_nb.runs import RunError
    run = Run.create({}, root=tmp_path, base_model='org/another-model', data_fingerprint=data.fingerprint)
    before = tree_digest(tmp_path)
    with pytest.raises(TrainError,
                       match="trained on 'org/another-model'"): Session.resume(run.id, lm, data, root=tmp_path)
    (tmp_path/'stray').mkdir()
    with pytest.raises(RunError, match='not a run folder'): Session.resume('stray', lm, data, root=tmp_path)
    with pytest.raises(RunError, match='Invalid run id'): Session.resume('../elsewhere', lm, data, root=tmp_path)
    assert tree_digest(tmp_path) == before

def test_resume_skips_a_corrupt_checkpoint_and_refuses_when_none_is_whole(lm, data, tmp_path):
    s = _session(lm, data, tmp_path, max_steps=6, save_steps=2)
    s.add_listener(lambda e: s._stop.set() if e.kind == 'log' and e.step == 3 else None)
    assert s.start().wait(180) == 'stopped'
    ck = s.run.path/'checkpoints'
    assert sorted(p.name for p in ck.iterdir()) == ['checkpoint-2', 'checkpoint-3']
    (ck/'checkpoint-3'/'adapter_model.safetensors').write_bytes(b'\x10\x00\x00\x00')      # a torn write
    state = (ck/'checkpoint-2'/'trainer_state.json').read_bytes()
    (ck/'checkpoint-2'/'trainer_state.json').write_text('{"global_step": ')
    before = tree_digest(s.run.path)
    with pytest.raises(TrainError, match='no checkpoint to resume from') as e:
        Session.resume(s.run.id, load_model(quantization='none'), data, root=tmp_path)
    assert 'checkpoint-3: adapter_model.safetensors is corrupt' in str(e.value)
    assert 'checkpoint-2: trainer_state.json is corrupt' in str(e.value)
    assert tree_digest(s.run.path) == before                 # metrics, samples and checkpoints kept as they were
    (ck/'checkpoint-2'/'trainer_state.json').write_bytes(state)
    r = Session.resume(s.run.id, load_model(quantization='none'), data, root=tmp_path)
    assert r.wait(180) == 'completed' and r.trainer.state.global_step == 6
    info = r.run.info()
    assert info['resumed_from'] == 'checkpoint-2' and info['skipped_checkpoints'] == ['checkpoint-3']

OOM_CHILD = textwrap.dedent('''
    import resource, sys
    from lora_nb.models import load_model
    from lora_nb.data import prepare
    from lora_nb.train import LoraSettings, Session, TrainSettings
    lm = load_model(quantization='none')
    long = [{'prompt': 'word ' * 500, 'completion': 'x ' * 500}] * 64
    data = prepare(long, lm.tokenizer, eval_size=0, max_length=1024)
    vm = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))   # 1 GiB more than now
    train = TrainSettings(max_steps=2, per_device_train_batch_size=64, padding_free=False)
    s = Session(lm, data, LoraSettings(r=4), train, root=sys.argv[1])
    print(s.start().wait(), flush=True); print(s.error); print(s.hint)
''')

@pytest.mark.slow
def test_out_of_memory_becomes_advice(tmp_path):
    r = subprocess.run([sys.executable, '-c', OOM_CHILD, str(tmp_path)], capture_output=True, text=True, timeout=300)
    status, error, hint = (r.stdout.splitlines() + ['', '', ''])[:3]
    assert status == 'failed', (r.stdout, r.stderr[-2000:])
    assert 'Out of memory' in error or 'allocate' in error, error
    assert 'per_device_train_batch_size' in hint and 'gradient_checkpointing' in hint and '4-bit' in hint
    info = Run.open(next(p.name for p in tmp_path.iterdir()), tmp_path).info()
    assert info['status'] == 'failed' and info['reason'] == 'oom'

def test_defaults_evaluate_and_probe_without_being_asked(lm, data, tmp_path):
    "An eval split is evaluated during the run and at its end; probe prompts are generated with no `probe_steps`."
    s = Session(lm, data, LoraSettings(r=4), TrainSettings(max_steps=10, learning_rate=1e-3, save_steps=100),
                probes=['Reverse the word for.'], root=tmp_path)
    assert s.start(background=False).status == 'completed'
    evals = [r['step'] for r in s.run.read('metrics').records if 'eval_loss' in r]
    assert evals == [2, 4, 6, 8, 10], evals                      # every fifth of the run, the last at its end
    assert [r['step'] for r in s.run.read('samples').records] == [2, 4, 6, 8, 10]

def test_one_pass_lora_layers_train_and_are_switched_back(lm, data, tmp_path):
    "Every LoRA linear layer trains through the one-pass forward (run.json counts them); after the run PEFT's is back."
    from peft.tuners.lora.layer import Linear as LoraLinear
    s = Session(lm, data, LoraSettings(r=4), TrainSettings(max_steps=3, save_steps=100), root=tmp_path)
    seen = []
    s.add_listener(lambda e: seen.append([type(m).__dict__['forward'] is not m.forward.__func__
                                          for m in s.lm.model.modules() if isinstance(m, LoraLinear)])
                   if e.kind == 'log' else None)
    assert s.start(background=False).status == 'completed'
    layers = [m for m in s.lm.model.modules() if isinstance(m, LoraLinear)]
    assert s.run.info()['one_pass_lora'] == len(layers) > 0
    assert seen and all(all(x) for x in seen)                     # one-pass while it trained
    assert not any('forward' in m.__dict__ for m in layers)      # PEFT's own forward after

def test_padding_free_falls_back_where_it_is_not_exact(tmp_path):
    "OPT's attention ignores position_ids (hazard 14): its run uses padded batches, and run.json says so."
    from lora_nb.models import save_random_model
    tok = load_model(quantization='none').tokenizer
    opt = save_random_model(tmp_path/'opt', model_type='opt', hidden_size=64, ffn_dim=128, num_attention_heads=2,
                            num_hidden_layers=2, word_embed_proj_dim=64, vocab_size=len(tok), dropout=0.0)
    lm_opt = load_model(opt, quantization='none')
    s = Session(lm_opt, prepare(RECS, lm_opt.tokenizer, eval_size=0), LoraSettings(r=4),
                TrainSettings(max_steps=2, save_steps=100), root=tmp_path/'runs')
    assert s.start(background=False).status == 'completed'
    assert s.run.info()['padding_free_used'] is False

def test_training_shows_no_deprecation_notice_from_our_calls(lm, data, tmp_path):
    "PEFT asking transformers `is_gradient_checkpointing` when the adapter is made is no notice for the user."
    import warnings
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        assert _session(lm, data, tmp_path).start(background=False).status == 'completed'
    assert not [w for w in seen if 'is_gradient_checkpointing' in str(w.message)], [str(w.message) for w in seen]
