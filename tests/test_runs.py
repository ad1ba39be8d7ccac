"""The run folder under concurrent writers and readers, and from other processes (hand-written)."""
import json, multiprocessing as mp, subprocess, sys, threading
from pathlib import Path
import pytest
from lora_nb.runs import Run, RunError, list_runs, run_path, write_json

def _writer(path, worker, n):
    run = Run(Path(path))
    for i in range(n): run.log('metrics', {'worker': worker, 'step': i, 'pad': 'x' * 512})

def test_appends_from_many_processes_never_interleave(tmp_path):
    run = Run.create({'r': 8}, root=tmp_path)
    procs = [mp.get_context('spawn').Process(target=_writer, args=(str(run.path), w, 300)) for w in range(4)]
    for p in procs: p.start()
    for p in procs: p.join(60)
    lines = run.read('metrics')
    assert not lines.corrupt and not lines.partial and len(lines.records) == 1200
    for w in range(4): assert [r['step'] for r in lines.records if r['worker'] == w] == list(range(300))

def test_reader_never_sees_a_half_written_run_json(tmp_path):
    run = Run.create({'r': 8}, root=tmp_path)
    stop, errors = threading.Event(), []
    def reader():
        while not stop.is_set():
            try: run.info()
            except RunError as e: errors.append(e)
    t = threading.Thread(target=reader)
    t.start()
    for i in range(300): run.update(step=i, blob='y' * 4096)
    stop.set()
    t.join()
    assert not errors and run.info()['step'] == 299
    assert not list(run.path.glob('.*.tmp'))

def test_stop_requested_from_another_process(tmp_path):
    run = Run.create({}, root=tmp_path)
    code = f"from lora_nb.runs import Run; Run.open({run.id!r}, {str(tmp_path)!r}).request_stop()"
    subprocess.run([sys.executable, '-c', code], check=True)
    assert run.stop_requested

@pytest.mark.parametrize('bad', ['..', '../outside', '/etc/passwd', 'a/../../b', '.git', 'x\x00y', '~root'])
def test_ids_that_leave_the_root_are_refused(tmp_path, bad):
    with pytest.raises(RunError): run_path(bad, tmp_path)
    with pytest.raises(RunError): Run.open(bad, tmp_path)

def test_listing_survives_damage_and_missing_root(tmp_path):
    good = Run.create({'r': 4}, root=tmp_path, base_model='embedded')
    good.log('metrics', {'step': 1, 'loss': 3.0})
    with open(good.path/'metrics.jsonl', 'a') as f: f.write('{"step": 2, "lo')          # a writer mid-line
    (tmp_path/'no-run-json').mkdir()
    bad = tmp_path/'bad-json'
    bad.mkdir()
    (bad/'run.json').write_text('[1, 2')
    (tmp_path/'stray.txt').write_text('not a run')
    rows = {r['id']: r for r in list_runs(tmp_path)}
    assert set(rows) == {good.id, 'bad-json'}
    assert rows[good.id]['loss'] == 3.0 and rows[good.id]['step'] == 1 and rows['bad-json']['status'] == 'corrupt'
    assert list_runs(tmp_path/'nope') == []

def test_many_runs_list_quickly(tmp_path):
    import time
    for i in range(2000):
        p = tmp_path/f'run-{i:05d}'
        p.mkdir()
        write_json(p/'run.json', {'id': p.name, 'status': 'completed', 'created': f'2026-01-01T00:00:{i%60:02d}'})
        (p/'metrics.jsonl').write_text(json.dumps({'step': 10, 'loss': 1.0}) + '\n')
    t0 = time.perf_counter()
    rows = list_runs(tmp_path)
    dt = time.perf_counter() - t0
    assert len(rows) == 2000 and dt < 10, dt

LORA_NB = str(Path(sys.executable).parent/'lora-nb')

def test_a_parent_path_that_leads_nowhere_names_the_missing_folder(tmp_path):
    "A preference run's `parent` given as a folder path that does not exist: the missing folder, not 'Invalid run id'."
    from lora_nb.prefer import parent_adapter
    for parent in (tmp_path/'gone'/'sft-1', tmp_path/'gone'):
        with pytest.raises(RunError) as e: parent_adapter(str(parent), tmp_path)
        assert f"No run folder at {str(parent)!r}: {str(tmp_path/'gone')!r} does not exist" in str(e.value)
        assert 'Invalid run id' not in str(e.value)

def test_a_runs_root_that_does_not_exist_is_named(tmp_path):
    run = Run.create({}, root=tmp_path/'runs')
    with pytest.raises(RunError, match=r"the runs root \S+/elsewhere does not exist"):
        Run.open(run.id, tmp_path/'elsewhere')
    r = subprocess.run([LORA_NB, 'runs', '--runs-root', str(tmp_path/'elsewhere')], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"no runs under {tmp_path/'elsewhere'} (the folder does not exist)"

def _family(root):
    sft = Run.create({}, name='sft', root=root)
    return sft, Run.create({}, name='dpo', root=root, parent=sft.id)

def test_deleting_a_parent_run_names_its_children(tmp_path):
    sft, dpo = _family(tmp_path)
    with pytest.raises(RunError, match=f"Run {sft.id} is the parent of {dpo.id}"): sft.delete()
    assert sft.path.exists() and sft.holder() is None
    r = subprocess.run([LORA_NB, 'runs', '--runs-root', str(tmp_path), '--delete', sft.id, '--yes'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"deleted {sft.id} (the parent of {dpo.id}, which keep their adapters)"
    assert not sft.path.exists() and dpo.path.exists()

def test_the_delete_question_names_the_children(tmp_path):
    "On a terminal, `lora-nb runs --delete` asks, and the question says which runs continue this one."
    import os, pty
    sft, dpo = _family(tmp_path)
    main, term = pty.openpty()
    p = subprocess.Popen([LORA_NB, 'runs', '--runs-root', str(tmp_path), '--delete', sft.id], stdin=term,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.write(main, b'n\n')
    out, err = p.communicate(timeout=120)
    os.close(main)
    os.close(term)
    assert p.returncode == 1 and f"It is the parent of {dpo.id}" in out and 'Not deleted.' in out, (out, err)
    assert sft.path.exists()
