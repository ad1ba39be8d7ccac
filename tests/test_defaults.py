"""Defaults chosen from the model and the data, the best evaluation kept, a run too short said (hand-written)."""
import json
import torch
from lora_nb.data import prepare
from lora_nb.settings import LoraSettings, TrainSettings
from lora_nb.train import Session
from conftest import RECS


def test_unset_rate_and_epochs_are_chosen_said_and_recorded(lm, tmp_path):
    data = prepare(RECS, lm.tokenizer, eval_size=4)
    s = Session(lm, data, LoraSettings(r=4), TrainSettings(save_steps=100), root=tmp_path).start()
    assert s.wait(600) == 'completed', s.error
    assert s.train.learning_rate == 2e-3 and s.train.num_train_epochs == 8.0   # a 6M model, 20 examples
    info = json.loads((s.run.path/'run.json').read_text())
    assert info['settings']['train']['learning_rate'] == 2e-3 and set(info['chosen']) == {'learning_rate',
                                                                                          'num_train_epochs'}
    assert '20 examples' in info['chosen']['num_train_epochs'] and 'notes' in info
    assert 0 < info['first_step_s'] == s.first_step_s   # Start to the first logged step
    assert s.trainer.state.global_step == 40   # 5 steps a pass × 8


def test_what_the_user_set_is_kept(lm, data, tmp_path):
    s = Session(lm, data, LoraSettings(r=4), TrainSettings(learning_rate=3e-4, max_steps=2, save_steps=100),
                root=tmp_path)
    assert s.train.learning_rate == 3e-4 and list(s.chosen) == ['num_train_epochs']   # unused: max_steps is set
    assert 'unused' in s.chosen['num_train_epochs']


def test_the_best_evaluation_is_put_back_when_the_end_is_worse(lm, data, tmp_path):
    s = Session(lm, data, LoraSettings(r=4), TrainSettings(max_steps=2, learning_rate=1e-3, save_steps=100),
                root=tmp_path).start()
    assert s.wait(600) == 'completed', s.error
    lora = {n: p for n, p in s.lm.model.named_parameters() if p.requires_grad}
    s.best = None
    s._keep_best({'step': 1, 'eval_loss': 1.0})
    good = {n: p.detach().clone() for n, p in lora.items()}
    with torch.no_grad():
        for p in lora.values(): p.add_(1.0)
    s._keep_best({'step': 2, 'eval_loss': 1.5})   # worse: not kept
    assert s.best['step'] == 1 and s.last_eval['step'] == 2
    done = s._restore_best()
    assert done == {'step': 1, 'eval_loss': 1.0, 'last_step': 2, 'last_eval_loss': 1.5}
    assert all(torch.equal(p, good[n]) for n, p in lora.items())
    s._keep_best({'step': 3, 'eval_loss': 1.01})   # within BEST_MARGIN of the best: the end stands
    assert s._restore_best() is None
