"""Headless runs: YAML configs, `lora-nb train/runs/export/push`, and the same run on two processes under accelerate
(hand-written)."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch, yaml
from accelerate.commands.config.config_args import load_config_from_file
from lora_nb.cli import main
from lora_nb.config import RunConfig
from lora_nb.data import prepare
from lora_nb.errors import SettingsError
from lora_nb.models import load_model
from lora_nb.runs import Run
from lora_nb.train import LoraSettings, Session, TrainSettings
from conftest import ROOT, only_run as _only_run, run_losses as _losses, tree_digest

BIN = Path(sys.executable).parent
WORDS = ['loop', 'class', 'yield', 'raise', 'while', 'import', 'return', 'lambda']
RECS = [{'instruction': f'Reverse the word {w}.', 'output': w[::-1]} for w in WORDS]
CPU_DDP = ROOT/'examples'/'accelerate'/'cpu_ddp.yaml'

def _write_config(folder:Path, **train) -> Path:
    "A run config on the embedded model, its data in a JSONL file beside it."
    (folder/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in RECS))
    cfg = dict(name='cli', runs_root='runs', data=dict(source='train.jsonl', eval_size=0),
               lora=dict(r=4, lora_dropout=0.0),
               train=dict(max_steps=4, per_device_train_batch_size=2, learning_rate=1e-3, warmup_steps=0, save_steps=2,
                          **train))
    (folder/'run.yaml').write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder/'run.yaml'

def _cli(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([str(BIN/'lora-nb'), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd,
                          env={**os.environ, **(env or {})})

def _ddp(*args, timeout=300, popen=False):
    cmd = [str(BIN/'accelerate'), 'launch', '--config_file', str(CPU_DDP), '-m', 'lora_nb', *map(str, args)]
    if popen: return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


# --- two processes ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    """2 ranks × 2 examples vs 1 process × 4 examples, 4 steps, fp32, no dropout, seeded adapter init.
    Same examples per step (accelerate shards the same seeded permutation), gradients averaged over the same tokens
    (transformers averages token counts across ranks), so the only difference is the order of float sums in the
    gradient all-reduce: measured ~1e-7 relative in grad_norm and equal losses to 5 decimals. 1e-4 relative leaves
    three orders of magnitude of margin and still fails for any real difference (a different batch changes the
    loss by > 1e-2)."""
    cfg = _write_config(tmp_path, probe_steps=2, max_new_tokens=4)
    text = cfg.read_text() + "probes: [Reverse the word for.]\nmodel: {dtype: float32}\n"
    cfg.write_text(text)
    r2 = _ddp('train', cfg, '--set', 'runs_root=ddp')
    assert r2.returncode == 0, r2.stderr[-3000:]
    r1 = _cli('train', cfg, '--set', 'runs_root=single', '--set', 'per_device_train_batch_size=4')
    assert r1.returncode == 0, r1.stderr[-3000:]
    ddp, one = _only_run(tmp_path/'ddp'), _only_run(tmp_path/'single')
    info = ddp.info()
    assert info['status'] == 'completed' and info['world_size'] == 2 and info['total_steps'] == 4
    assert r2.stdout.count('completed at step 4/4') == 1            # one rank reports
    l2, l1 = _losses(ddp), _losses(one)
    assert [s for s, _ in l2] == [1, 2, 3, 4] == [s for s, _ in l1]   # one metrics line per step: only rank 0 writes
    for (_, a), (_, b) in zip(l2, l1): assert a == pytest.approx(b, rel=1e-4)
    assert l2[-1][1] < l2[0][1] - 0.1                               # and it did train
    test_samples = ddp.read('samples').records
    assert [(r['step'], r['prompt']) for r in test_samples] == [(2, 'Reverse the word for.'),
                                                                (4, 'Reverse the word for.')]
    assert (ddp.path/'adapter'/'adapter_model.safetensors').exists() and not (ddp.path/'.adapter.tmp').exists()

@pytest.mark.slow
def test_stop_file_stops_every_rank(tmp_path):
    cfg = _write_config(tmp_path)
    p = _ddp('train', cfg, '--set', 'max_steps=500', popen=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            runs = list((tmp_path/'runs').glob('*/metrics.jsonl'))
            if runs and Run(runs[0].parent).read('metrics').records: break
            assert p.poll() is None, p.communicate()[1][-3000:]
            time.sleep(0.05)
        run = _only_run(tmp_path/'runs')
        run.request_stop()
        out, err = p.communicate(timeout=120)                     # no rank waits forever for the other
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == 0, err[-3000:]
    info = run.info()
    step = max(s for s, _ in _losses(run))
    assert info['status'] == 'stopped' and step < 500 and (run.path/'checkpoints'/f'checkpoint-{step}').exists()
    assert f'--resume {run.id}' in out

# --- configs and the command line ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_session_settings_round_trip_through_yaml_and_lora_nb_train(tmp_path):
    lm = load_model()
    data = prepare(RECS, lm.tokenizer, eval_size=2, seed=3)
    s = Session(lm, data, LoraSettings(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj']),
                TrainSettings(max_steps=2, learning_rate=5e-4, per_device_train_batch_size=3,
                              lr_scheduler_type='linear'),
                probes=['Reverse the word for.'], name='roundtrip', root=tmp_path/'nb')
    assert s.start().wait(180) == 'completed'
    (tmp_path/'run.yaml').write_text(RunConfig.from_session(s).with_overrides([f'runs_root={tmp_path/"cli"}']).to_yaml())
    r = _cli('train', tmp_path/'run.yaml')
    assert r.returncode == 0, r.stderr[-3000:]
    again = _only_run(tmp_path/'cli').info()
    assert again['settings'] == s.run.info()['settings'] and again['data_fingerprint'] == data.fingerprint
    assert again['name'] == 'roundtrip'

BAD = {   # name: (config text, --set overrides, what the message must say, the key's line or None)
    'unknown key': ("data: {source: train.jsonl}\nlora:\n  r: 4\n  lora_alpa: 8\n", [],
                    ['Unknown key `lora.lora_alpa`', 'Did you mean `lora_alpha`?'], 4),
    'key in the wrong section': ("data: {source: train.jsonl}\nlora:\n  learning_rate: 1.0e-4\n", [],
                                 ['`learning_rate` belongs in the `train` section'], 3),
    'wrong type': ("data: {source: train.jsonl}\ntrain:\n  max_steps: 4\n  per_device_train_batch_size: two\n", [],
                   ['`train.per_device_train_batch_size` must be int', "'two'"], 4),
    'missing data file': ("data:\n  source: nowhere.jsonl\n", [],
                          ["Data file 'nowhere.jsonl' (`data.source`) does not exist"], 2),
    '8-bit and 4-bit': ("data: {source: train.jsonl}\nmodel:\n  load_in_8bit: true\n  load_in_4bit: true\n", [],
                        ['`load_in_4bit` and `load_in_8bit` are both set'], 4),
    'override of a missing key': ("data: {source: train.jsonl}\n", ['lora.rank=8'],
                                  ['There is no setting `lora.rank` to override'], None),
    'bad override value': ("data: {source: train.jsonl}\n", ['lora.r=0'],
                           ['`lora.r`: `r` must be a positive integer, got 0 [--set lora.r=0]'], None),
    'tracker not installed': ("data: {source: train.jsonl}\nreport_to: wandb\n", [],
                              ["not installed", 'pip install wandb'], 2),
    'duplicate key': ("data: {source: train.jsonl}\nlora:\n  r: 4\n  r: 8\n", [],
                      ['`lora.r` is given twice (lines 3 and 4)'], 4),
    'not YAML': ("data: {source: train.jsonl\nlora: [\n", [], ['Not valid YAML'], None),
}

@pytest.mark.parametrize('case', list(BAD))
def test_bad_config_one_clear_error_nothing_changed(case, tmp_path, capsys):
    text, sets, says, line = BAD[case]
    (tmp_path/'train.jsonl').write_text(json.dumps(RECS[0]) + '\n')
    (tmp_path/'run.yaml').write_text(text)
    before = tree_digest(tmp_path)
    assert main(['train', str(tmp_path/'run.yaml'), *[a for s in sets for a in ('--set', s)]]) == 2
    err = capsys.readouterr().err
    assert err.startswith('lora-nb: ') and 'Traceback' not in err, err
    for s in says: assert s in err, err
    if line: assert f"{tmp_path/'run.yaml'}:{line}" in err, err
    assert tree_digest(tmp_path) == before and not (tmp_path/'runs').exists()

def test_errors_are_settings_errors_with_key_and_line(tmp_path):
    (tmp_path/'run.yaml').write_text("data:\n  text: hello\ntrain:\n  warmup_steps: -1\n")
    with pytest.raises(SettingsError) as e: RunConfig.load(tmp_path/'run.yaml')
    assert e.value.where == f"{tmp_path/'run.yaml'}:4" and '`train.warmup_steps`' in e.value.what

@pytest.mark.slow
def test_cli_set_and_resume(tmp_path):
    cfg = _write_config(tmp_path)
    p = subprocess.Popen([str(BIN/'lora-nb'), 'train', str(cfg), '--set', 'max_steps=12', '--set',
                          'lr_scheduler_type=constant'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        runs = tmp_path/'runs'
        def started(): return list(runs.glob('*/metrics.jsonl')) and _only_run(runs).read('metrics').records
        while not started():
            assert p.poll() is None, p.communicate()[1][-3000:]
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)                               # Ctrl-C: stop at the next step, save a checkpoint
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None: p.kill()
    run = _only_run(tmp_path/'runs')
    assert p.returncode == 0, err[-2000:]
    assert 'stopping at the next step boundary' in out and f'--resume {run.id}' in out, err[-2000:]
    st = run.info()['settings']['train']
    assert (st['max_steps'], st['lr_scheduler_type'], run.info()['status']) == (12, 'constant', 'stopped')
    line = next(l for l in out.splitlines() if l.strip().startswith('resume:'))
    assert line.split() == ['resume:', 'lora-nb', 'train', str(cfg), '--resume', run.id], line
    r = _cli('train', cfg, '--set', 'lora_alpha=64', '--resume', run.id)          # a --set that contradicts the run
    assert r.returncode == 2 and '`--set lora_alpha=64` contradicts run' in r.stderr, r.stderr[-2000:]
    r = _cli('train', cfg, '--resume', run.id)                  # as printed: the run keeps its own settings
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'completed at step 12/12' in r.stdout and run.info()['status'] == 'completed'
    assert 'train.max_steps (run 12, config 4)' in r.stdout          # what of the file was not used, said once
    assert _losses(run)[-1][0] == 12 and run.info()['resumed_from'].startswith('checkpoint-')
    assert run.info()['settings']['train']['lr_scheduler_type'] == 'constant'

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A completed CLI run whose adapter visibly changes the model (high learning rate)."
    folder = tmp_path_factory.mktemp('trained')
    r = _cli('train', _write_config(folder), '--set', 'max_steps=6', '--set', 'learning_rate=1e-2')
    assert r.returncode == 0, r.stderr[-3000:]
    return _only_run(folder/'runs')

@pytest.mark.slow
def test_runs_lists_the_run(trained):
    r = _cli('runs', '--runs-root', trained.path.parent)
    head, row = r.stdout.splitlines()
    assert head.split() == ['id', 'name', 'status', 'step', 'loss', 'eval_loss', 'adapter', 'created']
    assert row.split()[:4] == [trained.id, '-', 'completed', '6/6'] and row.split()[6] == 'yes'
    rows = json.loads(_cli('runs', '--json', '--runs-root', trained.path.parent).stdout)
    assert [x['id'] for x in rows] == [trained.id]
    assert _cli('runs', '--runs-root', trained.path.parent/'none').stdout.startswith('no runs under')

@pytest.mark.slow
def test_export_merge_gives_the_adapters_outputs(trained, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    r = _cli('export', trained.id, '--merge', tmp_path/'merged', '--runs-root', trained.path.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    merged = AutoModelForCausalLM.from_pretrained(tmp_path/'merged', dtype=torch.float32)
    assert not any('lora' in n for n, _ in merged.named_parameters()) and merged.dtype == torch.float32
    lm = load_model(quantization='none', dtype='float32')   # as the merged copy
    tok = lm.tokenizer
    base_out = lambda ids: lm.model.generate(**ids, max_new_tokens=12, do_sample=False)
    ids = tok([tok.apply_chat_template([{'role': 'user', 'content': f'Reverse the word {w}.'}], tokenize=False,
                                       add_generation_prompt=True)
               for w in ['loop', 'for']], return_tensors='pt', padding=True, padding_side='left',
              add_special_tokens=False)
    plain = base_out(ids)
    peft = PeftModel.from_pretrained(lm.model, trained.path/'adapter')
    with torch.no_grad():
        tuned = peft.generate(**ids, max_new_tokens=12, do_sample=False)
        test_logits, merged_logits = peft(**ids).logits, merged(**ids).logits
    assert not torch.equal(plain, tuned)                             # the adapter matters...
    assert torch.equal(merged.generate(**ids, max_new_tokens=12, do_sample=False),
                       tuned)   # ...and the merged model is it
    assert torch.allclose(test_logits, merged_logits, atol=1e-4)
    assert (tmp_path/'merged'/'tokenizer.json').exists()

def test_export_never_overwrites(trained, tmp_path):
    (tmp_path/'out').mkdir()
    (tmp_path/'out'/'mine.txt').write_text('keep me')
    before = tree_digest(tmp_path)
    r = _cli('export', trained.id, '--merge', tmp_path/'out', '--runs-root', trained.path.parent)
    assert r.returncode == 2 and 'already exists and is not an empty folder' in r.stderr
    assert tree_digest(tmp_path) == before
    r = _cli('export', trained.id, '--adapter', tmp_path/'copy', '--runs-root', trained.path.parent)
    assert r.returncode == 0 and tree_digest(tmp_path/'copy') == tree_digest(trained.path/'adapter')

@pytest.mark.slow
def test_push_fails_at_once_offline(trained):
    before = tree_digest(trained.path)
    t0 = time.perf_counter()
    r = _cli('push', trained.id, 'someone/adapter', '--runs-root', trained.path.parent,
             env={'HF_ENDPOINT': 'http://127.0.0.1:9'})
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("lora-nb: Can't push: the Hugging Face Hub is not reachable"), r.stderr
    assert time.perf_counter() - t0 < 30 and tree_digest(trained.path) == before
    r = _cli('push', 'no-such-run', 'someone/adapter', '--runs-root', trained.path.parent)
    assert r.returncode == 2 and "No run 'no-such-run'" in r.stderr

def test_report_to_passes_through_and_missing_trackers_are_named(tmp_path):
    assert TrainSettings().training_arguments(tmp_path, False).report_to == []
    with pytest.raises(SettingsError, match='pip install mlflow'): TrainSettings(report_to=['mlflow'])
    with pytest.raises(SettingsError, match="Did you mean 'wandb'"): TrainSettings(report_to='wand')

def test_example_accelerate_configs_load():
    configs = (ROOT/'examples'/'accelerate').glob('*.yaml')
    kinds = {p.name: load_config_from_file(str(p)).distributed_type.value for p in configs}
    assert kinds == {'cpu_ddp.yaml': 'MULTI_GPU', 'ddp.yaml': 'MULTI_GPU', 'fsdp.yaml': 'FSDP',
                     'deepspeed_zero2.yaml': 'DEEPSPEED'}
