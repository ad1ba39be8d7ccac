"""Preference runs in one packed row a batch, each rejected answer sharing its prompt's states, and label
log-probabilities from the labelled positions only: the same losses and adapter as TRL's padded batches, recorded in
run.json, and the model as it was afterwards (hand-written; real trainer)."""
import pytest
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.train import Session, TrainSettings, LoraSettings
from lora_nb.prefer import PreferenceSession
from lora_nb.speed import PACKED

PAIRS = [{'prompt': f"What is {a} plus {b}? Answer with a number.", 'chosen': f"It is {a + b}.",
          'rejected': f"It is {a + b + 1}, I think."} for a in range(4) for b in range(4)]

@pytest.fixture(scope='module')
def parent(tmp_path_factory):
    root = tmp_path_factory.mktemp('runs')
    lm = load_model(quantization='none', dtype='float32')
    recs = [{'instruction': r['prompt'], 'output': r['chosen']} for r in PAIRS]
    s = Session(lm, prepare(recs, lm.tokenizer, eval_size=0), LoraSettings(r=4, lora_alpha=8, lora_dropout=0.0),
                TrainSettings(max_steps=2, per_device_train_batch_size=4), root=root)
    s.start(background=False)
    assert s.status == 'completed', s.error
    return root, s.run.id

def run(parent, method, padding_free):
    root, pid = parent
    lm = load_model(quantization='none', dtype='float32')
    data = prepare(PAIRS, lm.tokenizer, format=method, eval_size=0)
    ts = TrainSettings(max_steps=3, per_device_train_batch_size=4, logging_steps=1, save_steps=1000,
                       padding_free=padding_free)
    s = PreferenceSession(lm, data, pid, train=ts, root=root)
    s.start(background=False)
    assert s.status == 'completed', s.error
    losses = [r['loss'] for r in s.run.read('metrics').records if 'loss' in r]
    return s, losses

@pytest.mark.slow
@pytest.mark.parametrize('method', ['dpo', 'kto'])
def test_packed_preference_run_trains_as_the_padded_one(parent, method):
    s0, padded = run(parent, method, padding_free=False)
    s1, packed = run(parent, method, padding_free=True)
    assert s0.run.info()['shared_prefixes'] is False and s1.run.info()['shared_prefixes'] is True
    assert s0.run.info()['label_log_probs'] is True   # the CPU head, in both (it doesn't depend on packing)
    assert len(packed) == len(padded) == 3 and packed != [0.0] * 3
    assert packed == pytest.approx(padded, abs=2e-4), (packed, padded)
    inner = s1.lm.model.get_base_model() if hasattr(s1.lm.model, 'get_base_model') else s1.lm.model
    assert 'forward' not in inner.base_model.__dict__   # the backbone's own forward again
    assert '_lora_nb_trl_forward' not in inner.__dict__   # TRL's fused head again
    assert all(getattr(m.config, '_attn_implementation', 'sdpa') != PACKED for m in s1.lm.model.modules()
               if hasattr(m, 'config'))
    w0 = {n: p for n, p in s0.lm.model.named_parameters() if 'lora_' in n and 'default' in n}
    w1 = dict(s1.lm.model.named_parameters())
    assert max((w0[n] - w1[n]).abs().max().item() for n in w0) < 1e-4   # the same adapter at the end
