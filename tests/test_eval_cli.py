"""`lora-nb eval RUN` and the `eval:` section of a run config (hand-written): a run trained headless by `lora-nb train`
evaluates itself when its config says so; `lora-nb eval` evaluates it again on its own eval split (the same examples,
so the two records are comparable) or on `--data`; the Studio's YAML with its Evaluate tab's choices runs the same way.
Bad input (an unknown metric, a run with no eval split, a data file gone) is said in a line or two, exit status 2, and
nothing in the run folder changes."""
import contextlib, io, json, os, subprocess, sys
from pathlib import Path
import pytest, yaml
from lora_nb.cli import main
from lora_nb.config import EvalSettings, RunConfig
from lora_nb.runs import Run
from conftest import RECS, tree_digest

BIN = Path(sys.executable).parent
HELD = [{'instruction': f'Reverse the word {w}.', 'output': w[::-1]} for w in ('for', 'if', 'def')]

def _jsonl(path:Path, rows:list[dict]) -> Path:
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return path

def _cli(*args, cwd:Path):
    return subprocess.run([str(BIN/'lora-nb'), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={**os.environ, 'LORA_NB_RUNS': str(cwd/'runs')})

def _config(folder:Path, name:str, data:dict, **sections) -> Path:
    cfg = dict(name=name, runs_root='runs', data=data, lora=dict(r=4, lora_dropout=0.0),
               train=dict(max_steps=3, per_device_train_batch_size=4, learning_rate=3e-3, warmup_steps=0,
                          save_steps=100), **sections)
    (folder/f'{name}.yaml').write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder/f'{name}.yaml'

def _run(folder:Path, name:str) -> Run:
    return Run(next(p for p in (folder/'runs').iterdir() if p.name.startswith(name + '-')))

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A run trained by `lora-nb train` from a config with an `eval:` section (4 examples held out)."
    d = tmp_path_factory.mktemp('evalcli')
    _jsonl(d/'train.jsonl', RECS)
    _jsonl(d/'held.jsonl', HELD)
    cfg = _config(d, 'rev', dict(source='train.jsonl', eval_size=4),
                  eval=dict(metrics=['exact_match', 'chrf'], max_new_tokens=8))
    r = _cli('train', cfg, cwd=d)
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(d=d, run=_run(d, 'rev'), stdout=r.stdout)

def test_train_evaluates_when_the_config_says_so(trained):
    run, out = trained['run'], trained['stdout']
    assert f'evaluating run {run.id} against its base' in out
    table = out.split('evaluating run', 1)[1].splitlines()
    assert table[2].split()[:1] == ['model'] and 'chrf' in table[2], out
    assert table[3].startswith('base ') and table[4].startswith(run.id + ' ')
    recs = run.read('evals').records
    assert len(recs) == 1 and recs[0]['data']['name'] == 'eval split' and recs[0]['data']['n'] == 4
    assert recs[0]['metrics'] == ['exact_match', 'chrf'] and recs[0]['settings']['max_new_tokens'] == 8
    assert recs[0]['columns']['default']['run'] == run.id
    kept = run.info()['data_source']                                    # where its data is, for `lora-nb eval`
    assert kept['kind'] == 'path' and Path(kept['path']) == trained['d']/'train.jsonl'

def test_eval_on_the_runs_own_eval_split(trained):
    run = trained['run']
    n = len(run.read('evals').records)
    r = _cli('eval', run.id, '--metric', 'exact_match', cwd=trained['d'])
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith('eval split: 4 examples, evaluation ev-') and lines[0].endswith(f'in run {run.id}')
    assert lines[1].split() == ['model', 'exact_match'] and lines[2].startswith('base ')
    assert lines[3].startswith(run.id + ' ') and ' [' in lines[3]
    recs = run.read('evals').records
    assert len(recs) == n + 1
    after_training, now = recs[0], recs[-1]
    assert now['data'] == after_training['data']                       # the same held-out examples: comparable
    assert now['columns']['tuned'] == {'run': run.id, 'adapter': str(run.path/'adapter')}
    assert (run.path/now['examples']).exists()

def test_eval_on_data_given(trained):
    run = trained['run']
    r = _cli('eval', run.id, '--data', 'held.jsonl', '--metric', 'exact_match', 'contains', '--json', cwd=trained['d'])
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads(r.stdout)
    assert (rec['data']['name'], rec['data']['n'], rec['metrics']) == ('held.jsonl', 3, ['exact_match', 'contains'])
    assert rec.pop('stored') == [run.id] and rec == run.read('evals').records[-1]   # printed as it is kept
    assert set(rec['figures']) == {'__base__', 'tuned'}
    fig = rec['figures']['tuned']['contains']
    assert fig['low'] <= fig['value'] <= fig['high'] and fig['n'] == 3

def _quiet(*argv) -> tuple[int, str]:
    "`lora-nb` in this process: its exit status and what it wrote to stderr."
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()): code = main(list(argv))
    return code, err.getvalue()

def test_bad_input_changes_nothing(trained, tmp_path):
    d, run = trained['d'], trained['run']
    root = str(d/'runs')
    before = tree_digest(run.path)
    code, err = _quiet('eval', run.id, '--runs-root', root, '--metric', 'exact_mach')
    assert code == 2 and "Unknown metric 'exact_mach'" in err and '[--metric]' in err and 'exact_match' in err, err
    code, err = _quiet('eval', run.id, '--runs-root', root, '--limit', '0')
    assert code == 2 and '`limit` must be an integer ≥ 1' in err, err
    code, err = _quiet('eval', run.id, '--runs-root', root, '--data', str(d/'nowhere.jsonl'))
    assert code == 2 and 'nowhere.jsonl' in err, err
    code, err = _quiet('eval', 'no-such-run', '--runs-root', root)
    assert code == 2 and "No run 'no-such-run'" in err, err
    (d/'train.jsonl').rename(d/'moved.jsonl')                           # the run's data file is gone
    try:
        code, err = _quiet('eval', run.id, '--runs-root', root)
        assert code == 2 and 'data file is not there any more' in err and '--data FILE' in err, err
    finally: (d/'moved.jsonl').rename(d/'train.jsonl')
    assert tree_digest(run.path) == before

def test_inline_examples_are_kept_and_no_eval_split_is_said(trained):
    "A config with the examples inline and none held out: the run keeps a copy; without --data, a clear refusal."
    d = trained['d']
    cfg = _config(d, 'inline', dict(records=RECS, eval_size=0))
    code, err = _quiet('train', str(cfg), '--set', f'runs_root={d/"runs"}')
    assert code == 0, err
    run = _run(d, 'inline')
    kept = run.info()['data_source']
    assert kept['copy'] == 'data/examples.jsonl' and [json.loads(x) for x in
                                                      (run.path/kept['copy']).read_text().splitlines()] == RECS
    before = tree_digest(run.path)
    code, err = _quiet('eval', run.id, '--runs-root', str(d/'runs'))
    assert code == 2 and 'held out no examples' in err and '--data FILE' in err, err
    assert tree_digest(run.path) == before
    code, err = _quiet('eval', run.id, '--runs-root', str(d/'runs'), '--data', str(d/'held.jsonl'))
    assert code == 0, err
    assert run.read('evals').records[-1]['data']['n'] == 3

def test_the_studios_yaml_evaluates_too(trained):
    "The Code tab's YAML, with the Evaluate tab's choices, reads back as the same settings and runs headless."
    from lora_nb.panels.studio import StudioState
    d = trained['d']
    st = StudioState(root=d/'runs')
    st.model.quantization = 'none'
    st.data.source, st.data.path, st.data.eval_size = 'path', str(d/'train.jsonl'), 4
    st.train.train.update(max_steps=2, save_steps=100)
    st.train.name = 'studio'
    st.evaluate.metrics, st.evaluate.limit, st.evaluate.max_new_tokens = ['exact_match', 'rouge_l'], 2, 8
    st.evaluate.data, st.evaluate.path = 'path', str(d/'held.jsonl')
    y = d/'studio.yaml'
    y.write_text(st.code.to_yaml(st))
    cfg = RunConfig.load(y)
    assert cfg.eval == EvalSettings(data=str(d/'held.jsonl'), metrics=['exact_match', 'rouge_l'], limit=2,
                                    max_new_tokens=8)
    assert RunConfig.from_dict(yaml.safe_load(cfg.to_yaml())).eval == cfg.eval
    r = _cli('train', y, cwd=d)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = _run(d, 'studio').read('evals').records[-1]
    assert (rec['data']['name'], rec['data']['n'], rec['metrics']) == ('held.jsonl', 2, ['exact_match', 'rouge_l'])

def test_eval_a_benchmark_offline(trained):
    "`--benchmark python_types`: lora_nb's own lm-eval task, base against the run's adapter, kept as an lm_eval record."
    d, run = trained['d'], trained['run']
    code, err = _quiet('eval', run.id, '--runs-root', str(d/'runs'), '--benchmark', 'python_types', '--metric', 'chrf')
    assert code == 2 and '--benchmark takes its data and metrics' in err, err
    r = _cli('eval', run.id, '--benchmark', 'python_types', '--limit', '8', '--json', cwd=d)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = json.loads(r.stdout)
    assert recs[0]['kind'] == 'lm_eval' and recs[0]['data']['name'] == 'lm_eval:lora_nb_python_types'
    stored = [json.loads(l) for l in (run.path/'evals.jsonl').read_text().splitlines()]
    assert stored[-1]['id'] == recs[0]['id'] and set(stored[-1]['figures']) == {'__base__', 'tuned'}
