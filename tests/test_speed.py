"""The expected duration before Start (CLI and Studio), the throughput a finished run records, and the GPU bench's dry
run on the CPU (hand-written)."""
import json, os, subprocess, sys
from pathlib import Path
import pytest, yaml
from lora_nb.panels.studio_view import Studio

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORDS = ['loop', 'class', 'yield', 'raise', 'while', 'import']
RECS = [{'instruction': f'Reverse the word {w}.', 'output': w[::-1]} for w in WORDS * 2]

@pytest.fixture
def cache(tmp_path, monkeypatch):
    "A throughput cache of the test's own."
    monkeypatch.setenv('LORA_NB_CACHE', str(tmp_path/'cache'))
    return tmp_path/'cache'/'throughput.json'

def _config(folder:Path) -> Path:
    (folder/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in RECS))
    cfg = dict(name='speed', runs_root='runs', data=dict(source='train.jsonl', eval_size=0), lora=dict(r=4),
               train=dict(max_steps=3, per_device_train_batch_size=2, save_steps=100))
    (folder/'run.yaml').write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder/'run.yaml'

@pytest.mark.slow
def test_lora_nb_train_says_how_long_before_it_starts_and_learns_from_the_run(tmp_path, cache):
    cfg = _config(tmp_path)
    run = lambda: subprocess.run([str(BIN/'lora-nb'), 'train', str(cfg)], capture_output=True, text=True,
                                 timeout=300, cwd=tmp_path, env=os.environ)
    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    lines = first.stdout.splitlines()
    said = next(i for i, l in enumerate(lines) if l.startswith('lora-nb: expected duration about'))
    assert said < next(i for i, l in enumerate(lines) if l.startswith('lora-nb: training run'))
    assert "matmul peak" in lines[said]                  # nothing measured here yet
    rows = next(iter(json.loads(cache.read_text()).values()))
    assert len(rows) == 1 and next(iter(rows.values()))[0]['flops_per_s'] > 0   # the run recorded its speed
    second = run()
    assert second.returncode == 0 and 'from this model shape' in second.stdout, second.stdout[-2000:]

def test_train_tab_shows_the_expected_duration_once_model_and_data_are_there(tmp_path, cache):
    studio = Studio(root=tmp_path)
    assert 'Expected duration' not in studio.train.status.value
    studio.model.load_btn.click()
    studio.data.fields['text'].w.value = '\n'.join(json.dumps(r) for r in RECS)
    studio.data.prep_btn.click()
    studio.on_tab({'new': 2})
    assert studio.train.status.value.startswith('Expected duration: about '), studio.train.status.value
    assert 'training tokens' in studio.train.status.value

@pytest.mark.slow
def test_gpu_bench_dry_run_on_the_cpu():
    r = subprocess.run([sys.executable, 'bench/gpu.py', '--dry'], capture_output=True, text=True, timeout=600,
                       cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads([l for l in r.stdout.splitlines() if l.startswith('{')][-1])
    rows = out['shapes']['dry']['variants']
    assert set(rows) == {'session-lora', 'session-qlora', 'trl-lora'}
    assert all(v['tokens_per_s'] > 0 and abs(v['final_loss'] - v['first_loss']) < 1 for v in rows.values()), rows
    assert 'session-lora_over_trl-lora' in out['shapes']['dry']['ratios']

@pytest.mark.slow
def test_cpu_bench_quick_run():
    r = subprocess.run([sys.executable, 'bench/cpu_speed.py', '--quick', '--reps', '1'], capture_output=True, text=True,
                       timeout=900, cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads([l for l in r.stdout.splitlines() if l.startswith('{')][-1])
    q = out['models']['quick']
    assert set(q['variants']) == {'session-fp32', 'session-bf16', 'trl-fp32'} and q['variants']['trl-fp32']['gc']
    assert all(0 < v['share_of_matmul_peak'] < 1 and v['estimate_mib'] > 0 for v in q['variants'].values()), q
    assert out['matmul_peak_gflops']['bfloat16'] > 0 and any(k.endswith('_over_trl-fp32') for k in q['ratios'])

@pytest.mark.slow
def test_compiled_run_in_a_thread_learns_as_the_plain_one(tmp_path, monkeypatch):
    "LORA_NB_COMPILE=1: the MLPs and norms train compiled, in the Session's background thread, to the plain run's loss."
    from lora_nb.data import prepare
    from lora_nb.models import load_model
    from lora_nb.speed import can_compile
    from lora_nb.train import LoraSettings, Session, TrainSettings
    losses = {}
    for flag in ('0', '1'):
        monkeypatch.setenv('LORA_NB_COMPILE', flag)
        lm = load_model(quantization='none', dtype='float32')
        s = Session(lm, prepare(RECS, lm.tokenizer, eval_size=0), LoraSettings(r=4, lora_dropout=0.0),
                    TrainSettings(max_steps=4, learning_rate=1e-3, save_steps=100), root=tmp_path/flag)
        assert s.start().wait() == 'completed', s.error
        info = s.run.info()
        losses[flag] = [r['loss'] for r in s.run.read('metrics').records if 'loss' in r]
        compiled = flag == '1' and can_compile()
        assert (info['compiled'] > 0) is compiled, info['compiled_why']
        assert not any('forward' in m.__dict__ for m in s.lm.model.modules() if type(m).__name__.endswith('MLP'))
    assert losses['1'] == pytest.approx(losses['0'], rel=1e-4)
