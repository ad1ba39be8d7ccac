"""The Studio's Evaluate tab, as state (hand-written): a real evaluation of the embedded model and a trained adapter,
its table and the examples that differ; bad input (no data, a metric the notebook doesn't define, an eval set of 0
examples, a missing file) said in the banner, with the last evaluation and the run's evals.jsonl kept as they were."""
import json
import pytest
from lora_nb.panels.studio import StudioState
from conftest import RECS, tree_digest

@pytest.fixture(scope='module')
def st(tmp_path_factory):
    "A Studio state with the embedded model, the reversing data (4 held out) and a 3-step run's adapter on it."
    s = StudioState(root=tmp_path_factory.mktemp('runs'))
    s.model.quantization = 'none'
    s.data.text = '\n'.join(json.dumps(r) for r in RECS)
    s.data.eval_size = 4
    assert s.model.load(s) is not None and s.data.prepare(s) is not None, s.banner
    s.train.train.update(max_steps=3, save_steps=3, probe_steps=0)
    assert s.train.start(s, name='tab').wait(120) == 'completed', s.banner
    return s

@pytest.fixture
def fresh(st):
    "The tab's choices back to their defaults, and the last evaluation forgotten, for each test."
    from lora_nb.panels.evaluate import EvaluateState
    st.evaluate = EvaluateState()
    st.action.banner = None
    return st

def test_run_table_and_differ(fresh):
    st, seen = fresh, []
    st.evaluate.metrics = ['exact_match', 'chrf', 'answer_length']
    ev = st.evaluate.run(st, progress=lambda done, total: seen.append((done, total)))
    assert ev is not None and st.banner is None, st.banner
    assert ev.columns == ['__base__', 'default'] and ev.info['data']['n'] == 4
    assert seen and seen[-1] == (4, 4)                                   # the progress bar reaches the end
    label = st.evaluate.labels['default']
    assert label.startswith('tab (')                                     # the adapter is shown by its run's name
    rows = st.evaluate.table()
    assert [r['column'] for r in rows] == ['base', label]
    assert all(' [' in r['chrf'] and r['chrf'].endswith(']') for r in rows)   # value [low, high]
    run = st.session.run
    rec = run.read('evals').records[-1]
    assert rec['id'] == ev.id and rec['columns']['default']['run'] == run.id   # stored with the run
    for m in ev.metrics:                                                # the tab's differ is the engine's, by label
        assert st.evaluate.differ('base', label, m) == ev.differ('__base__', 'default', m)
    d = st.evaluate.differ('base', label, 'answer_length')
    assert all(r['scores']['__base__']['answer_length'] != r['scores']['default']['answer_length'] for r in d)

def test_a_function_of_the_notebook_is_a_metric(fresh):
    "The custom field names a function defined in the kernel's namespace (a real IPython shell here)."
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    try:
        shell.run_cell("def shouty(prediction, reference, row): return float(prediction.isupper())")
        fresh.evaluate.metrics, fresh.evaluate.custom = ['exact_match'], 'shouty'
        ev = fresh.evaluate.run(fresh)
        assert ev is not None and ev.metrics == ['exact_match', 'shouty'], fresh.banner
        assert all(f['shouty']['n'] == 4 for f in ev.figures.values())
    finally: InteractiveShell.clear_instance()

def _kept(st):
    "What a refused evaluation must leave alone: the last evaluation, and the run folder byte for byte."
    return st.evaluate.evaluation, tree_digest(st.session.run.path)

def test_bad_input_is_said_and_nothing_is_lost(fresh, tmp_path):
    st = fresh
    assert st.evaluate.run(st) is not None
    before = _kept(st)
    st.evaluate.custom = 'no_such_metric'
    assert st.evaluate.run(st) is None
    assert "There is no function `no_such_metric` in the notebook" in st.banner and 'def no_such_metric(' in st.banner
    assert _kept(st) == before
    st.evaluate.custom, st.evaluate.data, st.evaluate.path = '', 'path', str(tmp_path/'nowhere.jsonl')
    assert st.evaluate.run(st) is None and 'nowhere.jsonl' in st.banner, st.banner
    assert _kept(st) == before
    (tmp_path/'empty.jsonl').write_text(json.dumps({'instruction': 'Reverse the word if.', 'output': 'fi'}) + '\n')
    st.evaluate.path, st.evaluate.limit = str(tmp_path/'empty.jsonl'), 1
    assert st.evaluate.run(st) is not None                              # one example is fine
    before = _kept(st)
    st.evaluate.data, st.evaluate.limit = 'split', None
    prepared, st.prepared = st.prepared, None
    try:
        assert st.evaluate.run(st) is None and st.banner.startswith('No data prepared yet'), st.banner
    finally: st.prepared = prepared
    st.evaluate.metrics = []
    assert st.evaluate.run(st) is None and 'choose at least one metric' in st.banner
    assert _kept(st) == before

def test_an_eval_set_of_zero_examples(fresh, tmp_path):
    "No eval split, a file whose examples have no reference, an empty file: refused before anything runs."
    st = fresh
    prepared = st.prepared
    try:
        st.data.eval_size = 0
        assert st.data.prepare(st) is not None and not st.prepared.eval
        assert st.evaluate.run(st) is None and 'no eval split' in st.banner, st.banner
    finally: st.prepared, st.data.eval_size = prepared, 4
    f = tmp_path/'prompts.jsonl'
    f.write_text(json.dumps({'instruction': 'Reverse the word if.'}) + '\n')
    st.evaluate.data, st.evaluate.path = 'path', str(f)
    assert st.evaluate.run(st) is None and 'no reference answer' in st.banner, st.banner
    st.evaluate.metrics = ['answer_length']                              # a metric that needs none: fine
    assert st.evaluate.run(st) is not None, st.banner
    before = _kept(st)
    f.write_text('')                                                     # a file of 0 examples
    assert st.evaluate.run(st) is None and 'The dataset is empty' in st.banner, st.banner
    assert _kept(st) == before

def test_refused_without_a_model(tmp_path):
    st = StudioState(root=tmp_path)
    assert st.evaluate.run(st) is None and st.banner == "Load a model first (Model tab)."

def test_the_tab_sits_after_training_and_before_export():
    "Between Adapters and Export: the tabs before it keep their places (tests and benches open them by index)."
    from lora_nb.panels.studio_view import TABS
    names = [n for n, _, _ in TABS]
    assert names[:8] == ['model', 'data', 'train', 'compare', 'chat', 'adapters', 'evaluate', 'export']
