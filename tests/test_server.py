"""The Jupyter server extension against a real `jupyter server` (hand-written): auth on every route, refused
traversal, damaged run folders, a missing runs root, thousands of runs, stop; every reply checked against the API
schema (lora_nb/lab/api.schema.json), and the extension's test fixtures regenerated from the server's replies."""
import difflib, inspect, json, os, re, sys, time
from pathlib import Path
import pytest
from jsonschema import Draft202012Validator
from tornado import web
sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
from labtest import Jupyter
import lora_nb.lab.server as server
from lora_nb.board import EMBEDDED
from lora_nb.runs import Run, append_jsonl

VERBS = ('get', 'post', 'put', 'patch', 'delete', 'head', 'options')

def verbs(handler) -> list[str]:
    "The HTTP verbs lora_nb's `handler` implements (not Jupyter's CORS `options`)."
    return [v for v in VERBS if getattr(getattr(handler, v), '__module__', None) == server.__name__]

def concrete(route:str, run_id:str='some-run') -> str:
    return route.lstrip('/').replace('([^/]+)', run_id)

def make_run(root, name='run', status='running', steps=5, **info):
    run = Run.create({'model': {'model_id': None, 'quantization': '4bit'}}, name=name, root=root,
                     base_model='embedded tiny base',
                     total_steps=steps, **info)
    run.update(status=status)
    run.log('metrics', *({'step': i, 'loss': 3 - i / steps, 'eta_s': steps - i} for i in range(1, steps + 1)))
    return run

SCHEMA = server.api_schema()

def route_of(verb:str, path:str) -> str|None:
    "The `x-routes` key of `verb path` (path relative to the base URL), or None when no lora-nb handler serves it."
    p = path.split('?')[0]
    return next((server.route_key(verb, r) for r, h in server.ROUTES
                 if re.fullmatch(r.lstrip('/'), p) and verb.lower() in verbs(h)), None)

def tally_problems(reply) -> list[str]:
    "Vote tallies in `reply` whose `wins` is not keyed by exactly their `a` and `b` (JSON Schema can't say so)."
    if isinstance(reply, list): return [p for v in reply for p in tally_problems(v)]
    if not isinstance(reply, dict): return []
    out = []
    if isinstance(reply.get('wins'), dict) and set(reply['wins']) != {reply.get('a'), reply.get('b')}:
        a, b = reply.get('a'), reply.get('b')
        out.append(f"wins is keyed by {sorted(reply['wins'])}, not by its a={a!r} and b={b!r}")
    return out + [p for v in reply.values() for p in tally_problems(v)]

def check_reply(verb:str, path:str, status:int, reply):
    "Fail unless lora-nb's `reply` to `verb path` with HTTP `status` is what lora_nb/lab/api.schema.json says."
    route = route_of(verb, path)
    if route is None or status == 403: return          # not a lora-nb handler's answer (Jupyter's own 403, 404, 405)
    schema = server.reply_schema(route, status, SCHEMA)
    assert schema is not None, f"{verb} {path} answered {status}, which x-routes in api.schema.json doesn't list"
    errors = sorted(Draft202012Validator(schema).iter_errors(reply), key=lambda e: list(map(str, e.absolute_path)))
    problems = [f"  at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}" for e in errors[:5]]
    problems += [f"  {p}" for p in tally_problems(reply)]
    assert not problems, (f"{verb} {path} -> {status} does not match {schema['$ref']} of lora_nb/lab/api.schema.json:\n"
                          + '\n'.join(problems))

class CheckedJupyter(Jupyter):
    "A `Jupyter` whose `json()` checks every reply of a lora-nb route against the API schema."
    def json(self, method:str, path:str, body=None, token:bool|str=True) -> tuple[int, dict]:
        code, reply = super().json(method, path, body, token)
        if token is True: check_reply(method, path, code, reply)
        return code, reply

@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    root_dir = tmp_path_factory.mktemp('srv')
    with CheckedJupyter('server', root_dir, env={'LORA_NB_RUNS': ''}) as j: yield j

@pytest.fixture
def runs(srv):
    root = Path(srv.root_dir)/'runs'
    yield root
    import shutil
    shutil.rmtree(root, ignore_errors=True)

def test_every_handler_is_routed_and_authenticated():
    "A new handler class must be in ROUTES and every verb it serves must require authentication."
    handlers = {c for _, c in inspect.getmembers(server, inspect.isclass)
                if issubclass(c, web.RequestHandler) and c.__module__ == server.__name__}
    routed = {h for _, h in server.ROUTES}
    assert handlers - {server.RunsHandler} == routed
    for h in routed:
        assert verbs(h), h
        for v in verbs(h):
            wrapped = getattr(getattr(h, v), '__wrapped__', None)
            assert wrapped is not None, f"{h.__name__}.{v} is not @web.authenticated"

def test_403_without_authentication_on_every_route(srv, runs):
    for route, h in server.ROUTES:
        for v in verbs(h):
            run = make_run(runs, status='completed')
            path = concrete(route, run.id)
            for token in (False, 'wrong-token'):
                code, body = srv.request(v.upper(), path, token=token)
                assert code == 403, (v, path, token, code, body[:200])
            assert run.path.exists() and run.info()['name'] == 'run'
            assert srv.request(v.upper(), path)[0] in (200, 400, 409), (v, path)   # and with the token it works

def test_extension_enabled(srv):
    code, body = srv.json('GET', 'api/status')
    assert code == 200
    assert 'lora_nb: runs from' in srv.output()

def test_missing_root_then_runs_appear(srv, runs):
    code, page = srv.json('GET', 'lora-nb/runs')
    assert code == 200 and page['exists'] is False and page['runs'] == [] and page['total'] == 0
    assert page['root'] == str(runs.resolve())
    run = make_run(runs)
    page = srv.json('GET', 'lora-nb/runs')[1]
    assert page['exists'] and [r['id'] for r in page['runs']] == [run.id]
    assert [r['id'] for r in page['active']] == [run.id]
    assert page['runs'][0]['step'] == 5 and page['runs'][0]['spark'][-1] == 2.0

def test_new_metrics_line_shows_at_next_poll(srv, runs):
    run = make_run(runs)
    assert srv.json('GET', 'lora-nb/runs')[1]['runs'][0]['step'] == 5
    run.log('metrics', {'step': 6, 'loss': 1.25})
    row = srv.json('GET', 'lora-nb/runs')[1]['runs'][0]
    assert (row['step'], row['loss']) == (6, 1.25)

@pytest.mark.parametrize('bad',
                         ['..', '...', '..%2F..%2Fetc', '%2Fetc%2Fpasswd', '%2E%2E', '.hidden', 'a%00b', 'x' * 300,
                          '~root'])
def test_ids_leaving_the_runs_root_are_refused(srv, runs, bad):
    make_run(runs)
    for v, path in (('GET', f'lora-nb/runs/{bad}'), ('POST', f'lora-nb/runs/{bad}/stop')):
        code, body = srv.json(v, path)
        assert code in (400, 404), (path, code)
        assert body.get('error'), body

def test_symlink_out_of_the_root_is_refused(srv, runs, tmp_path):
    outside = make_run(tmp_path/'elsewhere')
    runs.mkdir(exist_ok=True)
    (runs/'escape').symlink_to(outside.path)
    code, body = srv.json('GET', 'lora-nb/runs/escape')
    assert code == 400 and 'leaves the runs root' in body['error']
    assert srv.json('POST', 'lora-nb/runs/escape/stop')[0] == 400 and not outside.stop_requested
    assert 'escape' not in [r['id'] for r in srv.json('GET', 'lora-nb/runs')[1]['runs']]   # nor listed

def test_unknown_run_and_bad_paging(srv, runs):
    make_run(runs)
    code, body = srv.json('GET', 'lora-nb/runs/run-19990101-000000-abcd')
    assert code == 404 and 'No run' in body['error'] and body['hint']
    for q in ('offset=-1', 'limit=0', 'limit=100000', 'offset=abc'):
        code, body = srv.json('GET', f'lora-nb/runs?{q}')
        assert code == 400 and 'must be an integer' in body['error'], q

def test_corrupt_and_partial_files(srv, runs):
    good, bad = make_run(runs, 'good'), make_run(runs, 'bad', status='failed')
    with open(bad.path/'metrics.jsonl', 'a') as f: f.write('{"step": 6, "loss": NaN}\n%%% not json\n{"step": 7, "lo')
    (runs/'torn').mkdir()
    (runs/'torn'/'run.json').write_text('{"id": "torn", "sta')
    (bad.path/'samples.jsonl').write_bytes(b'\xff\xfe garbage\n')
    code, page = srv.json('GET', 'lora-nb/runs')          # strict JSON: the NaN is sent as null
    assert code == 200
    rows = {r['id']: r for r in page['runs']}
    assert rows['torn']['status'] == 'corrupt' and rows['torn']['error']
    assert rows[bad.id]['metrics_corrupt_lines'] == 1 and rows[bad.id]['loss'] is None
    assert rows[good.id]['status'] == 'running'
    code, d = srv.json('GET', f'lora-nb/runs/{bad.id}')
    assert code == 200 and d['metrics']['corrupt_lines'] == [7] and d['metrics']['partial'] is True
    assert len(d['metrics']['series']['loss']) == 5
    code, d = srv.json('GET', 'lora-nb/runs/torn')
    assert code == 200 and d['summary']['status'] == 'corrupt' and d['info'] == {}

def test_run_detail(srv, runs):
    run = make_run(runs, steps=2000)
    run.log('samples', {'step': 10, 'prompt': 'p', 'base': 'b', 'adapter': 'a'})
    run.log('votes', {'a': '__base__', 'b': 'run', 'winner': 'run'})
    code, d = srv.json('GET', f'lora-nb/runs/{run.id}')
    assert code == 200 and d['info']['settings']['model']['quantization'] == '4bit'
    m = d['metrics']
    assert m['points'] == 2000 and m['downsampled'] and len(m['series']['loss']) <= 600
    assert d['samples'][0]['adapter'] == 'a' and d['votes']['win_rate'] == 1.0 and d['code'] is None

def test_stop(srv, runs):
    run, done = make_run(runs), make_run(runs, status='completed')
    code, body = srv.json('POST', f'lora-nb/runs/{run.id}/stop')
    assert code == 200 and body['summary']['stop_requested'] and run.stop_requested
    assert [r for r in srv.json('GET', 'lora-nb/runs')[1]['runs'] if r['id'] == run.id][0]['stop_requested']
    code, body = srv.json('POST', f'lora-nb/runs/{done.id}/stop')
    assert code == 409 and 'nothing to stop' in body['error'] and not done.stop_requested
    assert srv.json('GET', f'lora-nb/runs/{run.id}/stop')[0] == 405

def test_rename_and_delete(srv, runs):
    "Rename changes the name (not the id) and shows in the list; delete removes a finished run, never a training one."
    live, done = make_run(runs), make_run(runs, status='completed')
    code, body = srv.json('PATCH', f'lora-nb/runs/{live.id}', {'name': 'short answers'})   # allowed while it trains
    assert code == 200 and body['summary']['name'] == 'short answers' and body['summary']['id'] == live.id
    assert [r['name'] for r in srv.json('GET', 'lora-nb/runs')[1]['runs'] if r['id'] == live.id] == ['short answers']
    for bad in ({'name': ''}, {'name': 'x' * 200}, {'other': 1}, ['a']):
        code, body = srv.json('PATCH', f'lora-nb/runs/{live.id}', bad)
        assert code == 400 and body['hint'], (bad, body)
    assert live.info()['name'] == 'short answers'
    code, body = srv.json('DELETE', f'lora-nb/runs/{live.id}')
    assert code == 409 and 'Stop it first' in body['hint'] and live.path.exists()
    code, body = srv.json('DELETE', f'lora-nb/runs/{done.id}')
    assert code == 200 and body == {'deleted': done.id} and not done.path.exists()
    assert done.id not in [r['id'] for r in srv.json('GET', 'lora-nb/runs')[1]['runs']]
    assert srv.json('DELETE', f'lora-nb/runs/{done.id}')[0] == 404
    assert sorted(p.name for p in runs.iterdir()) == [live.id]       # nothing left behind, hidden or not

def test_a_run_whose_writer_died_is_crashed_at_once(srv, runs):
    import subprocess
    from lora_nb.runs import _holder, write_json
    run = make_run(runs)
    write_json(run.path/'LOCK', _holder('live'))                      # this process: alive
    page = srv.json('GET', 'lora-nb/runs')[1]
    assert [r['status'] for r in page['runs'] if r['id'] == run.id] == ['running'] and page['active']
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    write_json(run.path/'LOCK', {**_holder('dead'), 'pid': dead.pid})  # a killed kernel's lock
    page = srv.json('GET', 'lora-nb/runs')[1]
    assert [r['status'] for r in page['runs'] if r['id'] == run.id] == ['crashed'] and not page['active']
    assert srv.json('GET', f'lora-nb/runs/{run.id}')[1]['summary']['status'] == 'crashed'
    code, body = srv.json('POST', f'lora-nb/runs/{run.id}/stop')
    assert code == 409 and 'crashed' in body['error']

def test_template(srv):
    import nbformat
    code, body = srv.json('GET', 'lora-nb/template')
    assert code == 200 and body['name'].endswith('.ipynb')
    nb = nbformat.from_dict(body['content'])
    nbformat.validate(nb)
    assert 'Studio.quickstart()' in nb.cells[1].source

def test_thousands_of_runs(srv, runs):
    "3000 runs: paged, and a warm poll stays fast (generous bound; bench/ reports the figure)."
    for i in range(3000): make_run(runs, f'r{i}', status='completed' if i % 500 else 'running', steps=20)
    t = time.perf_counter()
    code, page = srv.json('GET', 'lora-nb/runs?limit=100')
    first = time.perf_counter() - t
    assert code == 200 and page['total'] == 3000 and len(page['runs']) == 100 and len(page['active']) == 6
    t = time.perf_counter()
    srv.json('GET', 'lora-nb/runs?offset=2950&limit=100')
    warm = time.perf_counter() - t
    last = srv.json('GET', 'lora-nb/runs?offset=2950&limit=100')[1]['runs']
    assert len(last) == 50 and last[-1]['name'] == 'r0'
    assert warm < 2.0, (first, warm)

def test_kernels_get_the_runs_root(srv, runs):
    "A kernel this server starts (whatever its folder) has $LORA_NB_RUNS set to the sidebar's runs root."
    import asyncio, uuid
    from tornado.websocket import websocket_connect
    (Path(srv.root_dir)/'sub').mkdir(exist_ok=True)
    code, k = srv.json('POST', 'api/kernels', {'name': 'python3', 'path': 'sub'})
    assert code == 201, k
    async def run_code(src):
        ws = await websocket_connect(f"ws://127.0.0.1:{srv.port}/api/kernels/{k['id']}/channels?token={srv.token}")
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({'header': {'msg_id': msg_id, 'msg_type': 'execute_request', 'username': 't',
                                                'session': msg_id,
                                                'version': '5.3'}, 'parent_header': {}, 'metadata': {},
                                     'channel': 'shell',
                                     'content': {'code': src, 'silent': False, 'store_history': False,
                                                 'user_expressions': {},
                                                 'allow_stdin': False}}))
        out = ''
        while True:
            m = json.loads(await asyncio.wait_for(ws.read_message(), 60))
            if m['parent_header'].get('msg_id') != msg_id: continue
            if m['msg_type'] == 'stream': out += m['content']['text']
            if m['msg_type'] == 'status' and m['content']['execution_state'] == 'idle':
                ws.close()
                return out
    try:
        out = asyncio.run(run_code("import os; from lora_nb.runs import runs_root; print(os.getcwd()); "
                                   "print(runs_root())"))
        cwd, root = out.split()
        assert cwd.endswith('/sub') and root == str(runs.resolve()), out
    finally:
        srv.request('DELETE', f"api/kernels/{k['id']}")

# The contract between the server and the extension: lora_nb/lab/api.schema.json, and fixtures made from real replies.

def test_every_route_has_a_schema():
    "x-routes names every verb of every route, and each status it lists points at a definition."
    Draft202012Validator.check_schema(SCHEMA)
    assert set(SCHEMA['x-routes']) == {server.route_key(v, r) for r, h in server.ROUTES for v in verbs(h)}
    for route, answers in SCHEMA['x-routes'].items():
        assert '200' in answers, route
        for status, ref in answers.items():
            assert 200 <= int(status) < 600 and ref.startswith('#/$defs/'), ref
            assert ref[len('#/$defs/'):] in SCHEMA['$defs'], ref

def test_the_schema_check_can_fail():
    "The check catches a renamed key, a wrong type, and a tally keyed by anything but its adapter names."
    tally = dict(a='slow', b='fast', n=4, wins={'slow': 1, 'fast': 3}, ties=0, win_rate=0.75, interval=[0.3, 0.95])
    page = dict(root='/r', exists=True, total=0, offset=0, limit=50, active=[], runs=[])
    check_reply('GET', 'lora-nb/runs', 200, page)
    for bad in ({**page, 'count': 0}, {**page, 'total': '0'}, {k: v for k, v in page.items() if k != 'active'}):
        with pytest.raises(AssertionError, match='RunsPage'): check_reply('GET', 'lora-nb/runs', 200, bad)
    torn = dict(id='torn', status='corrupt', active=False, error="run.json can't be read", spark=[])
    metrics = dict(series={}, points=0, downsampled=False, corrupt_lines=[], partial=False)
    detail = dict(summary=torn, info={}, metrics=metrics, samples=[], votes={**tally, 'others': [tally]}, judges=None,
                  code=None, evals=[])
    check_reply('GET', 'lora-nb/runs/torn', 200, detail)
    with pytest.raises(AssertionError, match=r"keyed by \['A', 'B'\]"):
        bad = {**tally, 'wins': {'A': 1, 'B': 3}, 'others': []}      # the viewer's old reading of `wins`
        check_reply('GET', 'lora-nb/runs/torn', 200, {**detail, 'votes': bad})
    with pytest.raises(AssertionError, match='summary'):
        check_reply('GET', 'lora-nb/runs/torn', 200, {**detail, 'summary': {**torn, 'status': 'completed'}})
    with pytest.raises(AssertionError, match="doesn't list"): check_reply('GET', 'lora-nb/template', 500, {})

FIXTURES = Path(__file__).resolve().parent.parent/'extension'/'src'/'__tests__'/'fixtures'
REGENERATE = "LORA_NB_WRITE_FIXTURES=1 .venv/bin/pytest -q tests/test_server.py -k fixtures"
UPDATED, TIME, ROOT = '2026-11-23T10:45:00+00:00', 1795430700.0, '/srv/runs'
RUN_TIME = re.compile(r'-\d{8}-\d{6}-[0-9a-f]{4}\b')          # a run id's time and random suffix

def contract_runs(root:Path) -> dict:
    """The runs the fixtures show: `tuned` (completed, with an adapter, eval loss, probe samples and blind votes between
    two named adapters), `live` (running), `damaged` (failed, with bad and torn lines) and `torn` (run.json cut)."""
    settings = {'model': {'model_id': None, 'load_in_4bit': True, 'bnb_4bit_quant_type': 'nf4'},
                'lora': {'r': 8, 'lora_alpha': 16, 'target_modules': ['q_proj', 'v_proj']},
                'train': {'learning_rate': 0.0002, 'max_steps': 12}}
    tuned = Run.create(settings, name='tuned', root=root, base_model=None, total_steps=12)
    for i in range(1, 13):
        tuned.log('metrics', {'step': i, 'loss': round(3 - i / 6, 4), 'learning_rate': round(0.0002 * (1 - i / 12), 8),
                              'grad_norm': 1.5, 'tokens_per_s': 700.0 + i, 'eta_s': 12 - i})
        if i % 6 == 0: tuned.log('metrics', {'step': i, 'eval_loss': round(3.1 - i / 6, 4)})
    tuned.log('samples', *({'step': s, 'prompt': p, 'base': 'a number', 'adapter': a}
                           for s in (6, 12) for p, a in (('Type of 3?', 'int'), ("Type of 'x'?", 'str'))))
    (tuned.path/'adapter').mkdir()
    (tuned.path/'adapter'/'adapter_config.json').write_text('{}')
    def pair(a, b, *winners, **more):
        return [dict(prompt=f'q{i}', a=a, b=b, left=a, outputs={a: f'{a} {i}', b: f'{b} {i}'}, winner=w, **more)
                for i, w in enumerate(winners)]
    tuned.log('votes', *pair('__base__', 'slow', 'slow', 'slow'))       # an earlier pair: under `others`
    tuned.log('votes', *pair('slow', 'fast', 'fast', 'fast', 'slow', 'tie', 'fast'))
    judge = {'kind': 'endpoint', 'base_url': 'http://127.0.0.1:8000/v1', 'model': 'qwen2.5-7b-instruct'}
    with open(tuned.path/'judgments.jsonl', 'w') as f:       # a judge on the same pairs: agrees on 3 of the 4 decided
        f.writelines(json.dumps(j) + '\n' for j in pair('slow', 'fast', 'fast', 'slow', 'slow', 'invalid', 'fast',
                                                         judge=judge))
    tuned.update(status='completed', created='2026-11-23T10:00:00+00:00')

    live = Run.create(settings, name='live', root=root, base_model='HuggingFaceTB/SmolLM2-135M', total_steps=60)
    live.update(status='running', created='2026-11-23T10:30:00+00:00')
    live.log('metrics', *({'step': i, 'loss': round(2.5 - i / 30, 4), 'learning_rate': 0.0002, 'tokens_per_s': 680.0,
                           'eta_s': 60 - i} for i in range(1, 16)))

    damaged = Run.create(settings, name='damaged', root=root, base_model=None, total_steps=60)
    damaged.update(status='failed', created='2026-11-23T10:15:00+00:00',
                   error='RuntimeError: CUDA error: out of memory', hint='Lower per_device_train_batch_size.')
    damaged.log('metrics', *({'step': i, 'loss': 2.0 - i / 10} for i in range(1, 6)))
    with open(damaged.path/'metrics.jsonl', 'a') as f:
        f.write('{"step": 6, "loss": NaN}\n%%% not json\n{"step": 7, "lo')       # NaN, a bad line, a torn last line
    junk = b'\xff\xfe garbage\n[1, 2]\n{"step": 3}\n{"prompt": "Type of 2?", "base": "a number", "adapter": "int"}\n'
    (damaged.path/'samples.jsonl').write_bytes(junk)     # not JSON, not samples, and a sample without a step
    damaged.log('samples', {'step': 5, 'prompt': 'Type of 3?', 'base': 'a number', 'adapter': 'int'})
    (damaged.path/'votes.jsonl').write_text('{"a": "slow"}\nnot json\n')
    evaluate(tuned, damaged)

    (root/'torn').mkdir()
    (root/'torn'/'run.json').write_text('{"id": "torn", "sta')
    return dict(tuned=tuned, live=live, damaged=damaged)

def evaluate(tuned:Run, damaged:Run):
    """Evaluations in the spec's evals.jsonl format (issue 27) of both runs on one eval set, and blind votes between the
    two runs (with `runs`) and against the base (without: an older record), stored in `damaged`: the board's figures
    and ratings."""
    fig = lambda v, n=40: dict(value=v, low=round(max(0, v - 0.12), 4), high=round(min(1, v + 0.1), 4), n=n, errors=0)
    def record(i, figs, columns):
        return dict(id=f'ev-20261123T1020{i}0-00a{i}', time=f'2026-11-23T10:20:{i}0+00:00', kind='metrics',
                    data=dict(name='eval split of types', fingerprint='fp-types-40', n=40),
                    metrics=['exact_match', 'chrf'], settings=dict(max_new_tokens=64, chat=True, system=None,
                                                                    batch_size=16, limit=None),
                    seed=0, base=dict(model=None, revision=None), columns=columns,
                    figures={c: {m: fig(v) for m, v in zip(('exact_match', 'chrf'), f)} for c, f in figs.items()},
                    examples=f'evals/ev-20261123T1020{i}0-00a{i}.jsonl')
    cols = {'__base__': {'run': None}, 'tuned': {'run': tuned.id, 'adapter': str(tuned.path/'adapter')},
            'damaged': {'run': damaged.id, 'adapter': str(damaged.path/'checkpoints'/'checkpoint-5')}}
    both = record(1, {'__base__': (0.1, 0.3), 'tuned': (0.85, 0.9), 'damaged': (0.35, 0.5)}, cols)
    for run in (tuned, damaged): append_jsonl(run.path/'evals.jsonl', both)
    append_jsonl(tuned.path/'evals.jsonl', record(2, {'__base__': (0.1, 0.3), 'tuned': (0.875, 0.91)},
                                                  {k: cols[k] for k in ('__base__', 'tuned')}))
    runs = {'tuned': tuned.id, 'damaged': damaged.id}
    damaged.log('votes', *(dict(prompt=f'c{i}', a='damaged', b='tuned', left='tuned', winner=w, runs=runs,
                              outputs={'damaged': f'd {i}', 'tuned': f't {i}'})
                         for i, w in enumerate(['tuned', 'tuned', 'tie', 'damaged', 'tuned', 'both_bad'])))
    damaged.log('votes', *(dict(prompt=f'b{i}', a='__base__', b='damaged', left='damaged', winner=w,   # no `runs`
                                outputs={'__base__': f'b {i}', 'damaged': f'd {i}'})
                           for i, w in enumerate(['damaged', '__base__', 'damaged'])))

def normalised(o, root:Path):
    "`o` with what changes from run to run made fixed: run ids' times and suffixes, `updated`, record times, the root."
    if isinstance(o, dict):
        fixed = {'updated': UPDATED, 'time': TIME}
        clock = lambda k: k in fixed and o[k] is not None and not (k == 'time' and isinstance(o[k], str))  # ISO: fixed
        return {k: fixed[k] if clock(k) else normalised(v, root) for k, v in o.items()}
    if isinstance(o, list): return [normalised(v, root) for v in o]
    if isinstance(o, str): return RUN_TIME.sub('-20261123-101500-0000', o.replace(str(root), ROOT))
    return o

def exchanges(srv, root:Path) -> dict:
    "One request per route and status lora-nb answers with, and the reply, normalised: the extension's test fixtures."
    ids = {k: r.id for k, r in contract_runs(root).items()}
    run = lambda name: f"lora-nb/runs/{ids.get(name, name)}"
    asks = {'runs': ('GET', 'lora-nb/runs?offset=0&limit=3'), 'runs-page2': ('GET', 'lora-nb/runs?offset=3&limit=3'),
            'runs-bad-limit': ('GET', 'lora-nb/runs?limit=0'),
            'run-tuned': ('GET', run('tuned')), 'run-live': ('GET', run('live')),
            'run-damaged': ('GET', run('damaged')), 'run-torn': ('GET', run('torn')),
            'run-bad-id': ('GET', run('.hidden')), 'run-unknown': ('GET', run('no-such-run')),
            'board': ('GET', 'lora-nb/board'), 'board-chrf': ('GET', 'lora-nb/board?data=fp-types-40&metric=chrf'),
            'board-bad-metric': ('GET', 'lora-nb/board?metric=bleu'),
            'stop-done': ('POST', run('tuned') + '/stop'), 'stop-bad-id': ('POST', run('.hidden') + '/stop'),
            'stop-unknown': ('POST', run('no-such-run') + '/stop'),
            'rename-tuned': ('PATCH', run('tuned'), {'name': 'tuned, lr 2e-4'}),
            'rename-empty': ('PATCH', run('tuned'), {'name': ' '}), 'rename-unknown': ('PATCH', run('no-such-run'), {}),
            'delete-bad-id': ('DELETE', run('.hidden')), 'delete-unknown': ('DELETE', run('no-such-run')),
            'delete-damaged': ('DELETE', run('damaged')),
            'stop-live': ('POST', run('live') + '/stop'),               # last: the pages above show it not stopping yet
            'delete-live': ('DELETE', run('live')),
            'template': ('GET', 'lora-nb/template')}
    out = {}
    for name, (verb, path, *data) in asks.items():
        status, body = srv.json(verb, path, *data)      # checked against the schema on the way
        ex = dict(request=f'{verb} /{path}', route=route_of(verb, path), status=status, body=body)
        out[name] = normalised(ex, root)
    return out

def fixture_text(o, indent:int=0) -> str:
    "JSON for fixtures whose diffs read well: a list of numbers or strings, or what fits in 120 columns, on one line."
    flat = json.dumps(o, ensure_ascii=False)
    scalars = isinstance(o, list) and all(not isinstance(v, (dict, list)) for v in o)
    if not isinstance(o, (dict, list)) or not o or scalars or indent + len(flat) <= 120: return flat
    pad = ' ' * (indent + 2)
    if isinstance(o, list): items = [pad + fixture_text(v, indent + 2) for v in o]
    else: items = [f'{pad}{json.dumps(k)}: {fixture_text(v, indent + 2)}' for k, v in o.items()]
    opening, closing = '[]' if isinstance(o, list) else '{}'
    return opening + '\n' + ',\n'.join(items) + '\n' + ' ' * indent + closing

def test_replies_cover_every_route_and_status(srv, runs):
    "The fixtures hold a reply for every verb, route and status in x-routes; all of them valid (checked by `srv`)."
    got = exchanges(srv, runs)
    listed = {(route, status) for route, answers in SCHEMA['x-routes'].items() for status in answers}
    assert {(e['route'], str(e['status'])) for e in got.values()} == listed
    votes = got['run-tuned']['body']['votes']
    assert (votes['a'], votes['b'], votes['wins'], votes['ties']) == ('slow', 'fast', {'slow': 1, 'fast': 3}, 1)
    assert votes['others'][0]['wins'] == {'__base__': 0, 'slow': 2}
    judges = got['run-tuned']['body']['judges']
    assert (judges['wins'], judges['invalid'], judges['agreement']) == ({'slow': 2, 'fast': 2}, 1,
                                                                        {'n': 4, 'agree': 3, 'rate': 0.75})
    assert got['run-live']['body']['judges'] is None
    assert [s['step'] for s in got['run-damaged']['body']['samples']] == [None, 5]    # only the samples, not the junk
    assert got['stop-live']['body']['summary']['stop_requested'] and got['stop-done']['status'] == 409
    assert got['rename-tuned']['body']['summary']['name'] == 'tuned, lr 2e-4' and got['delete-live']['status'] == 409
    assert got['delete-damaged']['body'] == {'deleted': 'damaged-20261123-101500-0000'}
    row = {r['id']: r for r in got['runs']['body']['runs']}['tuned-20261123-101500-0000']
    assert (row['eval']['own']['value'], row['eval']['base']['value'], row['eval']['metric']) == (0.875, 0.1,
                                                                                                  'exact_match')
    assert [e['id'] for e in got['run-tuned']['body']['evals']] == ['ev-20261123T102010-00a1',
                                                                     'ev-20261123T102020-00a2']
    board = got['board']['body']
    assert (board['base'], board['data'], board['metric'], board['games']) == (EMBEDDED, 'fp-types-40', 'exact_match',
                                                                               11)
    assert [(r['name'], r['metric']['value'], r['games']) for r in board['rows']] == [
        ('tuned', 0.875, 8), ('damaged', 0.35, 9), (EMBEDDED, 0.1, 5)]
    ratings = [r['rating']['value'] for r in board['rows']]
    assert ratings == sorted(ratings, reverse=True) and ratings[-1] == 1000.0
    assert [r['metric']['value'] for r in got['board-chrf']['body']['rows']] == [0.91, 0.5, 0.3]
    assert got['board-bad-metric']['status'] == 400 and 'exact_match, chrf' in got['board-bad-metric']['body']['hint']

def test_board(srv, runs):
    "The leaderboard reads votes and evaluations afresh at each request; a base that has no runs is refused."
    ids = {k: r.id for k, r in contract_runs(runs).items()}
    code, b = srv.json('GET', 'lora-nb/board?base=HuggingFaceTB/SmolLM2-135M')
    assert code == 200 and [r['run'] for r in b['rows']] == ['__base__', ids['live']] and b['data'] is None
    assert b['rows'][1]['rating'] is None and b['games'] == 0
    code, b = srv.json('GET', 'lora-nb/board?base=gpt2')
    assert code == 400 and 'No run was trained on base' in b['error'] and EMBEDDED in b['hint']
    before = {r['run']: r['rating']['value'] for r in srv.json('GET', 'lora-nb/board')[1]['rows']}
    # votes for the base against `tuned`, stored in `tuned` without `runs`
    Run.open(ids['tuned'], runs).log('votes', *[{'a': '__base__', 'b': 'slow', 'winner': '__base__'}] * 6)
    after = {r['run']: r['rating']['value'] for r in srv.json('GET', 'lora-nb/board')[1]['rows']}
    assert after[ids['tuned']] < before[ids['tuned']]

def test_fixtures_match_the_server(srv, runs):
    "extension/src/__tests__/fixtures holds exactly what the server answers now (the jest tests render these)."
    got = {f'{name}.json': fixture_text(e) + '\n' for name, e in exchanges(srv, runs).items()}
    if os.environ.get('LORA_NB_WRITE_FIXTURES') == '1':
        FIXTURES.mkdir(parents=True, exist_ok=True)
        for p in FIXTURES.glob('*.json'):
            if p.name not in got: p.unlink()
        for name, text in got.items(): (FIXTURES/name).write_text(text, encoding='utf-8')
        return
    have = {p.name: p.read_text(encoding='utf-8') for p in FIXTURES.glob('*.json')}
    same = lambda n: n in have and n in got and json.loads(have[n]) == json.loads(got[n])
    differ = sorted(n for n in got.keys() | have.keys() if not same(n))
    diff = ''
    if differ:
        old, new = have.get(differ[0], '').splitlines(True), got.get(differ[0], '').splitlines(True)
        diff = ''.join(difflib.unified_diff(old, new, f'committed/{differ[0]}', f'server/{differ[0]}'))
    assert not differ, (f"The extension's fixtures in {FIXTURES} differ from the server's replies: {differ}.\n"
                        f"If the change is meant, regenerate them with `{REGENERATE}`, review the diff, and keep "
                        f"lora_nb/lab/api.schema.json and extension/src/api.ts in step.\n{diff[:3000]}")

def test_posts_from_a_browser_session_need_the_xsrf_token(srv, runs):
    "With the login cookie (a browser's session), a POST without the XSRF token is refused; with it, it works."
    import http.cookiejar, urllib.error, urllib.request
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    browser.open(f'{srv.url}/login?token={srv.token}', timeout=60).read()   # logs in: the session cookie and _xsrf
    xsrf = next(c.value for c in jar if c.name == '_xsrf')
    run = make_run(runs)
    def post(headers):
        req = urllib.request.Request(f'{srv.url}/lora-nb/runs/{run.id}/stop', data=b'', method='POST', headers=headers)
        try:
            with browser.open(req, timeout=60) as r: return r.status
        except urllib.error.HTTPError as e: return e.code
    assert post({}) == 403 and not run.stop_requested
    assert post({'X-XSRFToken': xsrf}) == 200 and run.stop_requested
