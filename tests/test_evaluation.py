"""`lora_nb.evaluation.evaluate`: the mixed batch against a plain per-model pass, the loss on references against
training's own tokens, where figures are stored, and bad input (hand-written)."""
import json, math
import pytest, torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from lora_nb import generation
from lora_nb.adapters import load as load_adapter
from lora_nb.evaluation import BASE, EvalError, eval_rows, evaluate, latest_eval, run_evals
from lora_nb.metrics import MetricError
from lora_nb.models import load_model
from lora_nb.runs import Run

WORDS = ['loop', 'class', 'yield', 'raise', 'while']
QA = [{'instruction': f'Reverse the word {w}.', 'output': w[::-1]} for w in WORDS]

@pytest.fixture(scope='module')
def base():
    return load_model(quantization='none', dtype='float32')

def _adapter_run(lm, root, name, seed, model_id=None):
    "A run folder holding a random (not zero) LoRA adapter for `lm`'s base."
    torch.manual_seed(seed)
    run = Run.create({'model': {'model_id': model_id}}, name=name, root=root)
    pm = get_peft_model(lm.model, LoraConfig(r=4, target_modules=['q_proj', 'v_proj'], init_lora_weights=False))
    pm.save_pretrained(run.path/'adapter')
    pm.unload()   # the base as it was
    if model_id:   # as if trained on that base
        cfg = run.path/'adapter'/'adapter_config.json'
        cfg.write_text(json.dumps({**json.loads(cfg.read_text()), 'base_model_name_or_path': model_id}))
    return run

@pytest.fixture(scope='module')
def two(tmp_path_factory):
    "A base of its own with two adapters loaded from two run folders."
    lm, root = load_model(quantization='none', dtype='float32'), tmp_path_factory.mktemp('runs')
    runs = [_adapter_run(lm, root, n, s) for n, s in (('one', 1), ('two', 2))]
    m = load_adapter(load_adapter(lm.model, runs[0].path, 'one'), runs[1].path, 'two')
    return m, lm.tokenizer, runs

def test_mixed_batch_gives_what_one_pass_per_model_gives(two, monkeypatch):
    m, tok, _ = two
    mixed = evaluate(m, tok, QA, ['exact_match', 'chrf', 'perplexity'], max_new_tokens=6, batch_size=2, save=False)
    monkeypatch.setattr(generation, '_mixed_batch_ok', lambda model: False)
    import lora_nb.evaluation as ev
    monkeypatch.setattr(ev, '_mixed_batch_ok', lambda model: False)
    each = evaluate(m, tok, QA, ['exact_match', 'chrf', 'perplexity'], max_new_tokens=6, batch_size=2, save=False)
    assert [r['outputs'] for r in mixed.rows] == [r['outputs'] for r in each.rows]
    assert any(r['outputs']['one'] != r['outputs'][BASE] for r in mixed.rows)   # the adapters do change answers
    for c in mixed.columns:
        ppl = lambda ev: ev.figures[c]['perplexity']['value']
        assert ppl(mixed) == pytest.approx(ppl(each), rel=1e-4)

def test_loss_is_the_training_loss_on_the_reference_tokens(base):
    "Per example: the summed loss and token count equal a plain forward over training's own input ids and labels."
    from lora_nb.data import prepare
    p = prepare(QA * 2, base.tokenizer, eval_size=4, seed=0)
    ev = evaluate(base.model, base.tokenizer, p, ['mean_loss'], save=False)
    for e, r in zip(p.eval, ev.rows):
        ids, labels = torch.tensor([e.input_ids]), torch.tensor([e.labels])
        with torch.no_grad(): logits = base.model(input_ids=ids).logits[:, :-1].float()
        want = F.cross_entropy(logits.transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction='sum').item()
        assert r['scores'][BASE]['mean_loss'] == pytest.approx(want / e.n_trained, rel=1e-4)

def test_each_adapters_run_keeps_the_evaluation_with_its_own_column(two):
    m, tok, runs = two
    ev = evaluate(m, tok, QA[:3], ['exact_match'], max_new_tokens=4)
    assert sorted(ev.info['stored']) == sorted(r.id for r in runs)
    for r, col in zip(runs, ('one', 'two')):
        rec = run_evals(r)[-1]
        assert rec['id'] == ev.id and rec['columns'][col]['run'] == r.id and rec['data']['n'] == 3
        assert latest_eval(r)['own'] == ev.figures[col]
        assert [x['index'] for x in eval_rows(r, ev.id)] == [1, 2, 3]
    json.dumps(ev.record())   # the record is plain JSON

def test_a_failing_metric_marks_its_examples_and_scores_the_rest(base):
    def picky(prediction, reference, row):
        if row['instruction'].endswith('yield.'): raise ValueError('no yields')
        return 1.0
    nan = lambda p, r, row: math.nan
    def words(p, r, row): return 'many'
    ev = evaluate(base.model, base.tokenizer, QA, [picky, nan, words], max_new_tokens=2, save=False)
    f = ev.figures[BASE]
    assert (f['picky']['n'], f['picky']['errors'], f['picky']['value']) == (4, 1, 1.0)
    assert f['custom']['errors'] == 5 and f['custom']['value'] is None
    assert f['words']['errors'] == 5
    errs = {(x['index'], x['metric']): x['error'] for x in ev.failures()}
    assert errs[(3, 'picky')] == 'ValueError: no yields' and errs[(1, 'custom')] == 'returned nan'
    assert 'not a number' in errs[(1, 'words')]
    assert '11 scores failed; first: example 1' in repr(ev)

@pytest.mark.parametrize('data, metrics, kw, says', [
    ([], ['exact_match'], {}, 'The eval set has 0 examples'),
    ([{'instruction': 'a'}, {'instruction': 'b', 'output': 'c'}], ['exact_match'], {},
     '1 of 2 examples have no reference'),
    ([{'text': 'just text'}], ['exact_match'], {}, "'text' data has no prompts to answer"),
    (QA, ['exact_match'], {'prompt_column': 'question'}, "has no column 'question'"),
    (QA, [], {}, 'No metrics to evaluate'),
    (QA, [lambda p, r, row: 1.0, lambda p, r, row: 0.0], {}, 'Metrics named twice'),
])
def test_bad_input_is_refused_before_anything_runs(base, data, metrics, kw, says):
    with pytest.raises(EvalError, match=says): evaluate(base.model, base.tokenizer, data, metrics, **kw)

def test_unknown_metric_names_the_presets(base):
    with pytest.raises(MetricError, match='Presets: exact_match'): evaluate(base.model, base.tokenizer, QA, ['exact'])

def test_an_adapter_from_a_run_on_another_base_is_refused_and_nothing_is_written(base, tmp_path):
    run = _adapter_run(base, tmp_path, 'other', 3, model_id='HuggingFaceTB/SmolLM2-135M-Instruct')
    pm = get_peft_model(base.model, LoraConfig(r=4, target_modules=['q_proj']), adapter_name='x')
    try:
        with pytest.raises(EvalError, match="trained on 'HuggingFaceTB/SmolLM2-135M-Instruct'"):
            evaluate(pm, base.tokenizer, QA, runs={'x': run})
    finally: pm.unload()
    assert run_evals(run) == [] and not (run.path/'evals').exists()

def test_answers_without_metrics_needing_references_and_multi_turn_prompts(base):
    chats = [{'messages': [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'},
                           {'role': 'user', 'content': 'Reverse the word loop.'}]}]
    ev = evaluate(base.model, base.tokenizer, chats, ['answer_length', 'json_valid'], max_new_tokens=3, save=False)
    assert ev.rows[0]['reference'] is None and len(ev.rows[0]['prompt']) == 3
    assert ev.figures[BASE]['answer_length']['n'] == 1

def test_a_file_and_a_dataset_evaluate_like_the_list(base, tmp_path):
    from datasets import Dataset
    p = tmp_path/'qa.jsonl'
    p.write_text(''.join(json.dumps(r) + '\n' for r in QA))
    a = evaluate(base.model, base.tokenizer, p, ['exact_match'], max_new_tokens=2, save=False)
    b = evaluate(base.model, base.tokenizer, Dataset.from_list(QA), ['exact_match'], max_new_tokens=2, save=False)
    assert a.info['data']['fingerprint'] == b.info['data']['fingerprint'] and a.info['data']['name'] == 'qa.jsonl'
    assert [r['outputs'] for r in a.rows] == [r['outputs'] for r in b.rows]

@pytest.mark.parametrize('quantization', ['none', '4bit'])
def test_stacked_adapters_give_peft_s_own_mixed_batch(quantization):
    "Two adapters with other ranks and targets, and the base, in one batch: the stacked path's logits are PEFT's."
    from lora_nb.generation import stacked_lora
    lm = load_model(quantization=quantization, **({'dtype': 'float32'} if quantization == 'none' else {}))
    torch.manual_seed(0)
    cfgs = {'one': LoraConfig(r=4, target_modules=['q_proj', 'v_proj'], init_lora_weights=False),
            'two': LoraConfig(r=8, lora_alpha=32, target_modules='all-linear', init_lora_weights=False)}
    pm = get_peft_model(lm.model, cfgs['one'], adapter_name='one')
    pm.add_adapter('two', cfgs['two'])
    pm.eval()
    rows = [BASE, 'one', 'two', 'two', BASE, 'one']
    ids = torch.randint(5, 4000, (len(rows), 7))
    with torch.no_grad():
        want = pm(input_ids=ids, adapter_names=rows).logits
        with stacked_lora(pm, rows) as stacked: got = pm(input_ids=ids).logits
        after = pm(input_ids=ids, adapter_names=rows).logits
    assert stacked and torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    assert torch.equal(after, want)   # the layers are PEFT's own again
    assert not torch.allclose(want[0], want[1], atol=1e-3)   # the adapters do change the logits

def test_trainable_tokens_are_not_stacked(base):
    "Trainable tokens (new tokens' embedding rows) are not plain LoRA linears: PEFT's own mixed batch runs them."
    from lora_nb.generation import stacked_lora
    pm = get_peft_model(base.model, LoraConfig(r=4, target_modules=['q_proj'], trainable_token_indices=[5]))
    try:
        with stacked_lora(pm.eval(), [BASE, 'default']) as stacked: assert not stacked
    finally: pm.unload()
