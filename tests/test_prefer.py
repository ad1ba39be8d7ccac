"""Preference training: the YAML path, stop, and the bad inputs of the issue (hand-written; real trainer)."""
import json, shutil, threading
import pytest
from lora_nb.errors import LoraNbError, SettingsError
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.runs import Run
from lora_nb.train import Session, TrainSettings, LoraSettings, TrainError
from lora_nb.config import RunConfig, run_config
from lora_nb.prefer import PreferenceSession, PreferenceSettings, PreferError
from lora_nb.preferences import collect

PAIRS = [{'prompt': f"What is {a} + {b}?", 'chosen': str(a + b), 'rejected': str(a + b + 1)}
         for a in range(5) for b in range(4)]

@pytest.fixture(scope='module')
def parent(tmp_path_factory):
    "A finished SFT run on the embedded model (its root, its id)."
    root = tmp_path_factory.mktemp('runs')
    lm = load_model(quantization='none')
    recs = [{'instruction': r['prompt'], 'output': r['chosen']} for r in PAIRS]
    s = Session(lm, prepare(recs, lm.tokenizer, eval_size=0), LoraSettings(r=4, lora_alpha=8, lora_dropout=0.0),
                TrainSettings(max_steps=2, per_device_train_batch_size=4), root=root)
    s.start(background=False)
    assert s.status == 'completed'
    return root, s.run.id

@pytest.mark.slow
def test_yaml_dpo_run(parent, tmp_path):
    root, pid = parent
    f = tmp_path/'pairs.jsonl'
    f.write_text(''.join(json.dumps(r) + '\n' for r in PAIRS))
    cfg = RunConfig.from_dict(dict(method='dpo', parent=pid, runs_root=str(root), name='yaml-dpo',
                                   model=dict(quantization='none'), data=dict(source=str(f), eval_size=0),
                                   prefer=dict(beta=0.2), train=dict(max_steps=2, per_device_train_batch_size=4)))
    assert cfg.prefer.method == 'dpo' and cfg.to_dict()['parent'] == pid
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).prefer.beta == 0.2   # round trip
    s = run_config(cfg, background=False)
    assert isinstance(s, PreferenceSession) and s.status == 'completed', s.error
    info = s.run.info()
    assert info['parent'] == pid and info['method'] == 'dpo' and info['settings']['prefer']['beta'] == 0.2
    assert len((s.run.path/'data'/'preferences.jsonl').read_text().splitlines()) == len(PAIRS)

def test_yaml_needs_parent():
    with pytest.raises(SettingsError, match='needs `parent`'):
        RunConfig.from_dict(dict(method='kto', data=dict(records=[{'text': 'x'}])))
    with pytest.raises(SettingsError, match="`method` is 'ppo'"):
        RunConfig.from_dict(dict(method='ppo', parent='x', data=dict(records=[{'text': 'x'}])))

@pytest.mark.slow
def test_kto_stop_resume(parent):
    "KTO in the background, stopped at a step boundary (a checkpoint and the adapter kept), then resumed to the end."
    root, pid = parent
    lm = load_model(quantization='none')
    data = prepare(PAIRS, lm.tokenizer, format='kto', eval_size=0)
    s = PreferenceSession(lm, data, pid, train=TrainSettings(max_steps=40, per_device_train_batch_size=4), root=root)
    logged = threading.Event()
    s.add_listener(lambda e: logged.set() if e.kind == 'log' else None)
    s.start()
    assert logged.wait(120)
    assert s.stop(timeout=120) == 'stopped'
    assert (s.run.path/'adapter'/'adapter_model.safetensors').exists()
    assert list((s.run.path/'checkpoints').glob('checkpoint-*'))
    assert s.run.info()['status'] == 'stopped'
    step = s.trainer.state.global_step
    again = PreferenceSession.resume(s.run.id, load_model(quantization='none'), data, root=root, background=False)
    assert again.status == 'completed' and again.trainer.state.global_step == 40 > step
    assert again.run.info()['resumed_from'] == f'checkpoint-{step}'
    assert sorted(again.lm.model.peft_config) == ['default', 'ref']

def test_too_few_votes_offers_kto(parent, tmp_path):
    root, pid = parent
    run = Run.open(pid, root)
    run.log('votes', dict(prompt='2+2?', a='x', b='y', winner='y', outputs={'x': '5', 'y': '4'}),
            dict(prompt='3+3?', a='x', b='y', winner='tie', outputs={'x': '6', 'y': 'six'}))
    prefs = collect(run)
    lm = load_model(quantization='none')
    with pytest.raises(PreferError, match='DPO needs at least 8 pairs') as e:
        prepare(prefs.rows('dpo'), lm.tokenizer, format='dpo')
    assert 'KTO' in e.value.hint and '7 more' in e.value.hint
    assert len(prepare(prefs.rows('kto'), lm.tokenizer, format='kto', eval_size=0).rows_train) == 4

def test_base_mismatch_and_adapters_present(parent, tmp_path):
    root, pid = parent
    other = Run.create({}, name='other', root=root, base_model='org/another-model')
    shutil.copytree(Run.open(pid, root).path/'adapter', other.path/'adapter')
    lm = load_model(quantization='none')
    data = prepare(PAIRS, lm.tokenizer, format='dpo', eval_size=0)
    with pytest.raises(TrainError, match="trained on 'org/another-model'"):
        PreferenceSession(lm, data, other.id, root=root).start(background=False)
    from lora_nb.adapters import load
    lm.model = load(lm.model, Run.open(pid, root).path, 'sft')
    with pytest.raises(TrainError, match='already has LoRA adapters'):
        PreferenceSession(lm, data, pid, root=root).start(background=False)

def test_bad_rows_and_templates():
    lm = load_model(quantization='none')
    with pytest.raises(LoraNbError, match='Example 2'):
        prepare([PAIRS[0], {'prompt': 'q', 'chosen': 3, 'rejected': 'b'}] + PAIRS, lm.tokenizer, format='dpo')
    bad = [{'prompt': [{'role': 'wizard', 'content': 'q'}], 'chosen': 'a', 'rejected': 'b'}] + PAIRS
    with pytest.raises(LoraNbError, match='unknown roles'):
        prepare(bad, lm.tokenizer, format='dpo')
    with pytest.raises(PreferError, match='needs preference data'):
        PreferenceSession(lm, prepare([{'text': 'x'}] * 4, lm.tokenizer, eval_size=0), 'nope')
    with pytest.raises(PreferError, match='prepared for DPO, not KTO'):
        PreferenceSession(lm, prepare(PAIRS, lm.tokenizer, format='dpo'), 'nope', PreferenceSettings(method='kto'))

def test_rows_are_counted_before_and_after_trl(parent):
    "run.json names the rows prepare left out and the rows TRL trains on; rows TRL would drop on its own are refused."
    root, pid = parent
    lm = load_model(quantization='none')
    rows = PAIRS + [{**r, 'prompt': 'Think hard. ' * 40 + r['prompt']} for r in PAIRS[:3]]
    data = prepare(rows, lm.tokenizer, format='dpo', eval_size=0, max_length=64)
    train = TrainSettings(max_steps=1, per_device_train_batch_size=4)
    s = PreferenceSession(lm, data, pid, train=train, root=root)
    s.start(background=False)
    info = s.run.info()
    assert s.status == 'completed', s.error
    assert info['dropped']['count'] == 3 and list(info['dropped']['rows'].values()) == [[21, 22, 23]]
    assert info['trl_rows'] == info['train_examples'] == len(PAIRS)
    kept = prepare(rows, lm.tokenizer, format='dpo', eval_size=0, max_length=1024)
    kept.settings['max_length'] = 64             # TRL would now drop three rows that prepare kept
    with pytest.raises(TrainError, match='TRL left out 3 of the 23 training rows') as e:
        PreferenceSession(load_model(quantization='none'), kept, pid, train=train, root=root).start(background=False)
    assert '`max_length`' in e.value.hint
