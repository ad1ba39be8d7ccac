"""Standard benchmarks through lm-eval (lora_nb.benchmarks), offline: the project's own task on the embedded model, base
vs a briefly trained adapter, and what is refused before anything runs (hand-written)."""
import json, re, shutil, time
from pathlib import Path
import pytest
from conftest import tree_digest

pytest.importorskip('lm_eval')
from lora_nb.benchmarks import LOCAL_TASKS, BenchmarkError, benchmark_names, run_benchmark  # noqa: E402
from lora_nb.runs import RUN_FILES  # noqa: E402


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A run of the embedded model trained briefly on the demo data (what the `python_types` task asks)."
    from lora_nb.data import prepare
    from lora_nb.demo import load_demo_data
    from lora_nb.models import load_model
    from lora_nb.train import LoraSettings, Session, TrainSettings
    lm = load_model(quantization='none')
    data = prepare(load_demo_data()[0][:160], lm.tokenizer, eval_size=8)
    s = Session(lm, data, LoraSettings(r=8, lora_alpha=16, lora_dropout=0.0),
                TrainSettings(max_steps=40, learning_rate=3e-3, per_device_train_batch_size=8, warmup_steps=0,
                              save_steps=1000, seed=0), root=tmp_path_factory.mktemp('runs')).start()
    assert s.wait(600) == 'completed', s.error
    return s.run


@pytest.fixture
def no_datasets_cache(tmp_path, monkeypatch):
    "Empty datasets and Hub caches, as on a fresh machine (a developer's cached ARC must not change the test)."
    import datasets.config, huggingface_hub.constants as hc
    monkeypatch.setattr(datasets.config, 'HF_DATASETS_CACHE', str(tmp_path/'datasets'))
    monkeypatch.setattr(hc, 'HF_HUB_CACHE', str(tmp_path/'hub'))


def evals(run) -> list[dict]:
    p = run.path/RUN_FILES['evals']
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def test_local_task_runs_offline_base_vs_adapter_and_is_stored(trained):
    before = len(evals(trained))
    b = run_benchmark('python_types', run=trained, offline=True)
    rec = b.records[0]
    assert evals(trained)[before:] == [rec]   # exactly one record, the one returned
    assert (rec['kind'], rec['data']['name'], rec['data']['n']) == ('lm_eval', 'lm_eval:lora_nb_python_types', 48)
    assert rec['columns']['tuned']['run'] == trained.id and rec['columns']['__base__'] == {'run': None}
    assert rec['metrics'] == ['acc', 'acc_norm'] and set(rec['figures']) == {'__base__', 'tuned'}
    for col in rec['figures'].values():
        for f in col.values():
            assert 0 <= f['low'] <= f['value'] <= f['high'] <= 1 and f['n'] == 48, f
    base, tuned = rec['figures']['__base__']['acc']['value'], rec['figures']['tuned']['acc']['value']
    assert tuned > base + 0.1, (base, tuned)   # measured: 0.125 (chance, 8 choices) → 0.44 after 40 steps
    assert rec['settings']['chat'] is True and rec['base']['model'] == 'embedded tiny base'
    assert {r['column'] for r in b.table()} == {'__base__', 'tuned'}


def test_the_record_is_read_as_any_evaluation_by_the_run_and_the_board(trained):
    from lora_nb.board import leaderboard
    from lora_nb.evaluation import latest_eval
    rec = run_benchmark('python_types', run=trained, limit=16, offline=True).records[0]
    assert latest_eval(trained)['own'] == rec['figures']['tuned']
    board = leaderboard(root=trained.path.parent, data=rec['data']['fingerprint'], metric='acc')
    rows = {r['run']: r['metric'] for r in board['rows']}
    assert rows[trained.id] == {k: rec['figures']['tuned']['acc'][k] for k in rows[trained.id]}
    assert rows['__base__']['value'] == rec['figures']['__base__']['acc']['value']


def test_limit_changes_the_fingerprint_and_a_loaded_model_is_given_back(trained):
    from peft import PeftModel
    from lora_nb.models import load_model
    lm = load_model(quantization='none')
    steps = []
    quick = run_benchmark('python_types', run=trained, model=lm, limit=8, offline=True,
                          progress=lambda done, total: steps.append((done, total))).records[0]
    assert steps == [(1, 2), (2, 2)]   # the base, then the adapter
    whole = run_benchmark('python_types', run=trained, model=lm, limit=None, offline=True).records[0]
    assert quick['data']['n'] == 8 and quick['settings']['limit'] == 8
    assert quick['data']['fingerprint'] != whole['data']['fingerprint']
    assert not isinstance(lm.model, PeftModel) and not any('lora_' in n for n, _ in lm.model.named_modules())


def test_a_task_yaml_reads_its_data_beside_it_from_any_directory(tmp_path, monkeypatch, capfd):
    task = tmp_path/'mine'
    shutil.copytree(LOCAL_TASKS/'python_types', task)
    y = task/'python_types.yaml'
    y.write_text(y.read_text().replace('task: lora_nb_python_types', 'task: my_types'))
    elsewhere = tmp_path/'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    b = run_benchmark(str(y), limit=4, chat=False, offline=True)   # the base alone: nothing to store
    assert b.records[0]['data']['name'] == 'lm_eval:my_types' and list(b.records[0]['figures']) == ['__base__']
    assert b.records[0]['data']['fingerprint'] == run_benchmark(str(y), limit=4, chat=False,
                                                                offline=True).records[0]['data']['fingerprint']
    assert 'not a git repository' not in capfd.readouterr().err   # simple_evaluate's `git describe`, not run here


def test_standard_task_without_its_data_offline_stops_before_anything_runs(trained, no_datasets_cache, monkeypatch):
    import lora_nb.benchmarks as bm
    monkeypatch.setattr(bm, '_base', lambda *a: pytest.fail('a model was loaded'))
    before, t0 = tree_digest(trained.path), time.time()
    with pytest.raises(BenchmarkError) as e:
        run_benchmark(['python_types', 'arc_easy'], run=trained, limit=4, offline=True)
    assert time.time() - t0 < 60   # nothing waits on the network
    assert "'arc_easy' is not on this machine: allenai/ai2_arc ARC-Easy" in e.value.what
    assert "load_dataset('allenai/ai2_arc', 'ARC-Easy')" in e.value.hint and 'HF_DATASETS_CACHE' in e.value.hint
    assert 'data_files' in e.value.hint
    assert tree_digest(trained.path) == before   # no record, not even python_types'


@pytest.mark.parametrize('name', ['gsm8k', 'hellaswag', 'mmlu_stem'])
def test_each_offered_standard_task_names_its_missing_data(name, no_datasets_cache):
    from lora_nb.benchmarks import BENCHMARKS
    with pytest.raises(BenchmarkError) as e: run_benchmark(name, offline=True)
    assert BENCHMARKS[name].dataset in e.value.what


def test_an_unknown_task_is_refused_with_the_offered_ones(trained):
    before = tree_digest(trained.path)
    with pytest.raises(BenchmarkError) as e: run_benchmark('arc_eazy', run=trained, offline=True)
    assert "'arc_eazy'" in e.value.what and 'Offered: ' + ', '.join(benchmark_names()) in e.value.hint
    assert tree_digest(trained.path) == before


def test_an_adapter_on_another_base_is_refused_and_nothing_is_written(trained, tmp_path):
    from peft import LoraConfig, get_peft_model
    from lora_nb.models import load_model, save_random_model
    other = save_random_model(tmp_path/'other-base')
    lm = load_model(str(other), quantization='none')
    get_peft_model(lm.model, LoraConfig(r=4, target_modules=['q_proj'])).save_pretrained(tmp_path/'other-adapter')
    before = tree_digest(trained.path)
    with pytest.raises(BenchmarkError) as e:
        run_benchmark('python_types', run=trained, adapters={'other': tmp_path/'other-adapter'}, offline=True)
    assert str(other) in e.value.what and 'other' in e.value.what
    embedded = load_model(quantization='none')
    with pytest.raises(BenchmarkError):
        run_benchmark('python_types', model=embedded, adapters={'other': tmp_path/'other-adapter'}, offline=True)
    assert tree_digest(trained.path) == before


def test_without_lm_eval_the_extra_is_named(monkeypatch):
    import sys
    for m in [m for m in sys.modules if m == 'lm_eval' or m.startswith('lm_eval.')]: monkeypatch.delitem(sys.modules, m)
    monkeypatch.setitem(sys.modules, 'lm_eval', None)   # what `import lm_eval` meets where it is not installed
    with pytest.raises(BenchmarkError) as e: run_benchmark('python_types', offline=True)
    assert "pip install 'lora_nb[eval]'" in e.value.hint


GENERATED = """task: my_types_generated
dataset_path: json
dataset_kwargs:
  data_files:
    test: python_types.jsonl
output_type: generate_until
test_split: test
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
filter_list:
  - name: first-word
    filter:
      - function: regex
        regex_pattern: "(\\\\w+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

def test_a_generated_answer_task_runs_base_vs_adapter(trained, tmp_path):
    "Like GSM8K: the answer is generated (with the adapter off for the base), scored under lm-eval's filters."
    shutil.copy(LOCAL_TASKS/'python_types'/'python_types.jsonl', tmp_path)
    (tmp_path/'generated.yaml').write_text(GENERATED)
    rec = run_benchmark(str(tmp_path/'generated.yaml'), run=trained, limit=8, chat=True, offline=True).records[0]
    assert rec['metrics'] == ['exact_match,first-word'] and rec['data']['n'] == 8
    base, tuned = (rec['figures'][c]['exact_match,first-word']['value'] for c in ('__base__', 'tuned'))
    assert 0 <= base < tuned <= 1, (base, tuned)   # measured: 0.0 → 0.5 of 8


ARC_ROWS = [{'id': 'q1', 'question': 'Which of these is a liquid at room temperature?', 'answerKey': 'A',
             'choices': {'text': ['water', 'ice', 'steam', 'salt'], 'label': ['A', 'B', 'C', 'D']}},
            {'id': 'q2', 'question': 'What do plants need to make their food?', 'answerKey': 'A',
             'choices': {'text': ['sunlight', 'sand', 'plastic', 'metal'], 'label': ['A', 'B', 'C', 'D']}},
            {'id': 'q3', 'question': 'Which planet is closest to the Sun?', 'answerKey': 'B',
             'choices': {'text': ['Mars', 'Mercury', 'Jupiter', 'Saturn'], 'label': ['A', 'B', 'C', 'D']}}]


def test_a_local_copy_made_as_the_hint_says_runs(tmp_path, no_datasets_cache):
    "The missing-data hint's YAML, written as it reads, runs ARC-Easy's own prompt and metrics on a copy of its rows."
    with pytest.raises(BenchmarkError) as e: run_benchmark('arc_easy', offline=True)
    lines = re.findall(r'`([a-z_]+: [^`]+)`', e.value.hint.split('or save its rows')[1])
    (tmp_path/'arc.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in ARC_ROWS))
    (tmp_path/'arc_local.yaml').write_text('\n'.join(lines).replace('FILE', 'arc.jsonl') + '\n')
    rec = run_benchmark(str(tmp_path/'arc_local.yaml'), offline=True).records[0]
    assert (rec['data']['name'], rec['data']['n'], rec['metrics']) == ('lm_eval:arc_easy_local', 3, ['acc', 'acc_norm'])


def test_a_task_whose_data_lacks_a_split_says_so(tmp_path):
    import lm_eval
    (tmp_path/'arc.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in ARC_ROWS))
    arc = Path(lm_eval.__file__).parent/'tasks'/'arc'/'arc_easy.yaml'
    (tmp_path/'t.yaml').write_text(f"include: {arc}\ntask: arc_rows\ndataset_path: json\ndataset_name: null\n"
                                   "dataset_kwargs: {data_files: {test: arc.jsonl}}\n")   # arc_easy reads train too
    with pytest.raises(BenchmarkError) as e: run_benchmark(str(tmp_path/'t.yaml'), offline=True)
    assert "The data of task 'arc_rows' can't be loaded" in e.value.what and 'training_split: null' in e.value.hint
