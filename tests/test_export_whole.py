"""Export: every step whole, or nothing (hand-written). A run that still trains, destinations that can't be written,
the base GGUF an adapter-only Ollama export needs, clashes between the parts, Q8_0's near-ties, Ollama names."""
import json, os, subprocess
from pathlib import Path
import pytest
import torch

from lora_nb.errors import LoraNbError
from lora_nb.export import export_gguf, export_lora_gguf, load_merged
from lora_nb.gguf_writer import GGUFError, gguf_arch, model_tensors, tensor_plan, write_gguf
from lora_nb.gguf_check import TIE_MARGIN, reference, verify_gguf
from lora_nb.models import load_model
from lora_nb.runs import Run
from test_export import LORA_NB, make_run, random_adapter

def _cli(*args, root):
    return subprocess.run([LORA_NB, 'export', *map(str, args), '--runs-root', str(root)], capture_output=True,
                          text=True, timeout=600)

def _files(folder):
    return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).exists() else []

def _checkpoint(run, step, **kw):
    "A whole checkpoint of `run` with other weights than its adapter/ (written after it)."
    c = random_adapter(run/'checkpoints'/f'checkpoint-{step}', seed=step, scale=0.2, **kw)
    (c/'trainer_state.json').write_text(json.dumps(dict(global_step=step)))
    t = (run/'adapter'/'adapter_config.json').stat().st_mtime
    os.utime(c/'adapter_config.json', (t + 5, t + 5))
    return c

# --- a run that still trains ----------------------------------------------------------------------------------------

def test_a_training_run_is_refused_and_its_checkpoint_exported_by_name(tmp_path):
    "While a live process trains a run, its older adapter/ is not exported; its newest checkpoint is, by name."
    run = make_run(tmp_path)
    _checkpoint(run, 5)
    Run(run).update(status='running')
    token = Run(run).lock()   # this process is the run's live writer
    for export in (lambda: export_gguf(run, qtype='f16', verify=False), lambda: export_lora_gguf(run),
                   lambda: export_gguf(run/'adapter', qtype='f16', verify=False)):
        with pytest.raises(LoraNbError, match='still training') as e:
            export()
        assert "checkpoint='checkpoint-5'" in e.value.hint and '--checkpoint checkpoint-5' in e.value.hint
    assert not (run/'export').exists()
    e = export_gguf(run, qtype='f16', n_tokens=16, checkpoint='latest')
    assert e.path == run/'export'/'run-1-checkpoint-5-f16.gguf' and e.passed, str(e)
    merged_ckpt = load_merged(run/'checkpoints'/'checkpoint-5')[0]   # the file is the checkpoint's weights
    ref = reference(merged_ckpt, load_model(None).tokenizer, n_tokens=8)
    plan = tensor_plan(model_tensors(merged_ckpt, gguf_arch(merged_ckpt.config)), 'f16')
    assert verify_gguf(e.path, ref, plan, 'f16').passed
    r = _cli('run-1', '--gguf', 'f16', '--no-verify', root=tmp_path)
    assert r.returncode == 2 and 'still training' in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    r = _cli('run-1', '--gguf', 'f16', '--adapter-only', '--checkpoint', 'checkpoint-5', root=tmp_path)
    assert r.returncode == 0 and 'run-1-checkpoint-5-lora-f16.gguf' in r.stdout, r.stderr[-2000:]
    r = _cli('run-1', '--adapter', tmp_path/'copied', '--checkpoint', 'latest', root=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert {'adapter_config.json', 'adapter_model.safetensors'} <= set(_files(tmp_path/'copied'))
    assert 'trainer_state.json' not in _files(tmp_path/'copied')   # the adapter, not the trainer's state
    Run(run).unlock(token)

def test_a_resumed_run_whose_checkpoint_is_newer_than_its_adapter_is_refused(tmp_path):
    "No live writer (a resumed run that crashed), but checkpoint-8 is newer than adapter/: refused, with what to do."
    run = make_run(tmp_path)
    _checkpoint(run, 8)
    Run(run).update(status='crashed')
    with pytest.raises(LoraNbError, match='checkpoint-8 is newer than its adapter/') as e:
        export_gguf(run, qtype='f16', verify=False)
    assert '--resume run-1' in e.value.hint and '--checkpoint checkpoint-8' in e.value.hint
    with pytest.raises(LoraNbError, match="no whole checkpoint 'checkpoint-9'"):
        export_gguf(run, qtype='f16', verify=False, checkpoint='checkpoint-9')
    with pytest.raises(GGUFError, match='is for a run'):
        export_gguf(None, tmp_path/'m.gguf', checkpoint='latest')

# --- destinations that can't be written -----------------------------------------------------------------------------

def _unwritable(tmp_path):
    "Destinations that fail for root too: under a path that is a file, and (on Linux) under /proc."
    (tmp_path/'a-file').write_text('not a folder')
    return [tmp_path/'a-file'/'out'] + ([Path('/proc/lora-nb-no-such')/'out'] if Path('/proc/self').exists() else [])

def test_an_unwritable_destination_is_a_one_line_error(tmp_path):
    run = make_run(tmp_path/'runs')
    for folder in _unwritable(tmp_path):
        for export in (lambda: export_gguf(run, folder/'m.gguf', 'f16', verify=False),
                       lambda: export_lora_gguf(run, folder/'lora.gguf', ollama=True, verify=False)):
            with pytest.raises(GGUFError, match="Can't write to") as e:
                export()
            assert e.value.where == str(folder) and 'folder you can write to' in e.value.hint
    bad = _unwritable(tmp_path)[0]
    for args in (['--gguf', 'f16', '--no-verify', '--out', bad/'m.gguf'], ['--merge', bad], ['--adapter', bad]):
        r = _cli('run-1', *args, root=tmp_path/'runs')
        assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
        assert r.stderr.startswith("lora-nb: Can't write to") and len(r.stderr.splitlines()) <= 2, r.stderr
    assert _files(run/'export') == []

# --- --adapter-only --ollama: its base GGUF, written and verified, or checked ---------------------------------------

def test_adapter_only_ollama_writes_and_verifies_its_base_or_checks_the_one_there(tmp_path):
    run = make_run(tmp_path)
    ex = run/'export'
    ex.mkdir()
    (ex/'tiny_base-q8_0.gguf').write_bytes(b'junk!')
    with pytest.raises(GGUFError, match="tiny_base-q8_0.gguf is there but is not") as e:
        export_lora_gguf(run, ollama=True)
    assert "can't read it" in e.value.what and '--overwrite' in e.value.hint
    assert _files(ex) == ['tiny_base-q8_0.gguf'] and (ex/'tiny_base-q8_0.gguf').read_bytes() == b'junk!'
    e = export_lora_gguf(run, ollama=True, overwrite=True, n_tokens=32)
    assert e.passed and e.base.verification.passed and e.base.verification.n_tokens == 32 and not e.base.kept
    assert e.base.path == ex/'tiny_base-q8_0.gguf' and (ex/'tiny_base-q8_0.gguf').stat().st_size > 1 << 20
    assert 'base: wrote' in str(e) and str(e.base.verification) in str(e)
    e2 = export_lora_gguf(run, qtype='q8_0', ollama=True, n_tokens=32)   # the base that is there now: checked, kept
    assert e2.base.kept and e2.base.verification.passed and e2.passed and 'base: kept' in str(e2)
    assert _files(ex) == ['run-1-lora-f16.Modelfile', 'run-1-lora-f16.gguf', 'run-1-lora-q8_0.Modelfile',
                          'run-1-lora-q8_0.gguf', 'tiny_base-q8_0.gguf']

# --- all parts checked for clashes before any is written; a failure leaves no half export ----------------------------

def test_a_clash_with_any_part_is_found_before_anything_is_written(tmp_path):
    run = make_run(tmp_path)
    ex = run/'export'
    ex.mkdir()
    (ex/'run-1-q8_0.Modelfile').write_text('mine')
    (ex/'run-1-lora-f16.Modelfile').write_text('mine too')
    with pytest.raises(GGUFError, match='run-1-q8_0.Modelfile.* already exists'):
        export_gguf(run, ollama=True)
    with pytest.raises(GGUFError, match='run-1-lora-f16.Modelfile.* already exists'):
        export_lora_gguf(run, ollama=True)
    assert _files(ex) == ['run-1-lora-f16.Modelfile', 'run-1-q8_0.Modelfile']   # no GGUF, no base
    assert (ex/'run-1-q8_0.Modelfile').read_text() == 'mine'

def test_a_failure_in_the_last_part_leaves_no_half_export(tmp_path, monkeypatch):
    "The Modelfile fails after the GGUF (and the base) were written: none of them is left."
    import lora_nb.export as ex
    def broken(*a, **kw): raise OSError(28, 'No space left on device')
    monkeypatch.setattr(ex, 'modelfile', broken)
    run = make_run(tmp_path)
    with pytest.raises(GGUFError, match='Free disk space'):
        export_gguf(run, qtype='f16', ollama=True, verify=False)
    assert _files(run/'export') == []
    with pytest.raises(GGUFError, match='Free disk space'):
        export_lora_gguf(run, ollama=True, verify=False)
    assert _files(run/'export') == []

# --- Q8_0: near-ties are reported apart, and only clear positions decide ----------------------------------------------

def _twin(model, ref):
    "Give the most frequent greedy token a twin, its output row times 1 + 1e-6: a near-tie that Q8_0 stores as a tie."
    i = int(ref.pred.mode().values)
    j = model.config.vocab_size - 1 if i != model.config.vocab_size - 1 else model.config.vocab_size - 2
    with torch.no_grad(): model.lm_head.weight[j] = model.lm_head.weight[i] * (1 + 1e-6)
    return i, j

def test_q8_0_check_passes_a_correct_file_on_near_ties_and_fails_a_wrong_one(tmp_path):
    lm = load_model(None, quantization='none', dtype='float32')
    model, tok = lm.model, lm.tokenizer
    i, j = _twin(model, reference(model, tok, n_tokens=64))
    ref = reference(model, tok, n_tokens=64)
    assert (ref.pred == max(i, j)).float().mean() > 0.02   # the twins lead at enough positions to matter
    f = write_gguf(model, tok, tmp_path/'twin-q8_0.gguf', 'q8_0')
    plan = tensor_plan(model_tensors(model, gguf_arch(model.config)), 'q8_0')
    v = verify_gguf(f, ref, plan, 'q8_0', tok)
    assert v.passed and v.greedy_agreement >= 0.99 and v.near_ties >= (ref.pred == max(i, j)).sum(), str(v)
    assert v.near_tie_diffs > 0 and f"{v.near_ties} near-ties (top two within {TIE_MARGIN:.0%}" in str(v)
    other = load_merged(make_run(tmp_path, scale=0.3))[0]   # a file of another model: clear positions differ
    wrong = verify_gguf(write_gguf(other, tok, tmp_path/'other-q8_0.gguf', 'q8_0'), ref, plan, 'q8_0', tok)
    assert not wrong.passed and wrong.greedy_agreement < 0.99, str(wrong)

# --- each export of a run gets its own Ollama name -------------------------------------------------------------------

def test_each_export_of_a_run_has_its_own_ollama_name(tmp_path):
    run = make_run(tmp_path)
    cmds = [export_gguf(run, qtype='f16', ollama=True, verify=False).ollama_command,
            export_gguf(run, qtype='q8_0', ollama=True, verify=False).ollama_command,
            export_lora_gguf(run, ollama=True, verify=False).ollama_command]
    names = [c.split('ollama create ')[1].split(' ')[0] for c in cmds]
    assert names == ['run-1-f16', 'run-1-q8_0', 'run-1-lora-f16']

def test_push_of_a_training_run_is_refused_before_any_upload(tmp_path):
    "`lora-nb push` checks the run as an export does: while it trains, its older adapter/ is not uploaded."
    run = make_run(tmp_path)
    _checkpoint(run, 5)
    Run(run).update(status='running')
    token = Run(run).lock()
    r = subprocess.run([LORA_NB, 'push', 'run-1', 'someone/adapter', '--runs-root', str(tmp_path)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    Run(run).unlock(token)
    assert r.returncode == 2 and 'still training' in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert '--checkpoint checkpoint-5' in r.stderr
