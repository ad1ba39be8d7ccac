"""Judges against a real OpenAI-compatible server on loopback, and endpoints that fail (hand-written)."""
import json, socket, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import pytest
from lora_nb.generation import Comparison
from lora_nb.runs import Run, read_jsonl
from lora_nb.judge import EndpointJudge, JudgeError, judge_pairs, judge_tally, agreement

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

CMP = Comparison(['What is the type of 3?', "What is the type of 'a'?"], ['x', 'y'],
                 [{'x': 'int', 'y': 'str'}, {'x': 'int', 'y': 'str'}])

@pytest.fixture(scope='module')
def server():
    "`python -m lora_nb.serve` on the embedded model, on a free loopback port."
    port = free_port()
    p = subprocess.Popen([sys.executable, '-m', 'lora_nb.serve', '--port', str(port)], stdout=subprocess.PIPE,
                         text=True)
    assert 'serving' in p.stdout.readline()
    yield f'http://127.0.0.1:{port}/v1'
    p.terminate()
    p.wait()

def test_real_server_judgments_kept(server, tmp_path):
    run = Run.create({}, root=tmp_path)
    judge = EndpointJudge(server, 'lora-nb', max_tokens=12, retries=0)
    js = judge_pairs(judge, CMP, 'x', 'y', run=run, rubric='Name the Python type.', references=['int', 'str'])
    recs = read_jsonl(run.path/'judgments.jsonl').records
    assert len(recs) == 2 and recs[0]['judge'] == {'kind': 'endpoint', 'base_url': server, 'model': 'lora-nb'}
    assert '[Rubric]' in recs[0]['judge_prompt'] and '[Reference answer]\nint' in recs[0]['judge_prompt']
    assert all(len(r['answers']) == 2 and all(isinstance(a, str) for a in r['answers']) for r in recs)
    t = judge_tally(js, 'x', 'y')
    assert t['n'] + t['invalid'] == 2
    again = judge_pairs(judge, CMP, 'x', 'y', run=run)   # already judged: read back, not asked again
    assert [j['time'] for j in again] == [j['time'] for j in js]

class _Fault(BaseHTTPRequestHandler):
    "An endpoint that misbehaves as told by the class attribute `plan` (one entry per request, the last repeats)."
    plan, seen = [], []
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        step = self.plan[min(len(self.seen), len(self.plan) - 1)]
        self.seen.append(step)
        if step == 'hang': time.sleep(3)
        code, body = {'429': (429, b'{"error": "slow down"}'), 'garbage': (200, b'<html>hello</html>'),
                      'hang': (200, b'{}'), 'prose': (200, None), 'A': (200, None), 'B': (200, None)}[step]
        if body is None:
            text = {'prose': 'Both answers have merit.', 'A': 'Reasoning...\n[[A]]', 'B': '[[B]]'}[step]
            body = json.dumps({'choices': [{'message': {'role': 'assistant', 'content': text}}]}).encode()
        try:
            self.send_response(code)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError): pass

@pytest.fixture
def fault():
    srv = ThreadingHTTPServer(('127.0.0.1', 0), _Fault)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Fault.seen = []
    yield f'http://127.0.0.1:{srv.server_address[1]}/v1'
    srv.shutdown()

def test_endpoint_down():
    j = EndpointJudge(f'http://127.0.0.1:{free_port()}/v1', 'm', retries=1, backoff=0.01)
    with pytest.raises(JudgeError, match=r"can't connect .*after 2 tries"):
        judge_pairs(j, CMP, 'x', 'y')

def test_slow_endpoint_times_out(fault):
    _Fault.plan = ['hang']
    j = EndpointJudge(fault, 'm', timeout=0.3, retries=1, backoff=0.01)
    with pytest.raises(JudgeError, match='no answer within 0.3 s'):
        j.ask('s', 'u')
    assert len(_Fault.seen) == 2   # bounded: one retry

def test_rate_limit_retried_then_answered(fault):
    _Fault.plan = ['429', '429', 'A', 'B']
    j = EndpointJudge(fault, 'm', retries=2, backoff=0.01)
    one = Comparison(CMP.prompts[:1], CMP.columns, CMP.outputs[:1])
    assert judge_pairs(j, one, 'x', 'y')[0]['winner'] == 'x'   # A, then B with the order swapped: x both times

def test_garbage_fails_clearly_and_keeps_judgments(fault, tmp_path):
    run = Run.create({}, root=tmp_path)
    _Fault.plan = ['A', 'B', 'garbage']
    j = EndpointJudge(fault, 'm', retries=1, backoff=0.01)
    with pytest.raises(JudgeError, match=r'not an OpenAI chat completion.*1 of 2 judgments were made and kept'):
        judge_pairs(j, CMP, 'x', 'y', run=run)
    assert len(read_jsonl(run.path/'judgments.jsonl').records) == 1

def test_unparseable_and_position_bias(fault):
    _Fault.plan = ['prose']
    j = EndpointJudge(fault, 'm', retries=0)
    js = judge_pairs(j, CMP, 'x', 'y')
    assert {x['winner'] for x in js} == {'invalid'}
    assert judge_tally(js, 'x', 'y')['invalid'] == 2 and judge_tally(js, 'x', 'y')['win_rate'] is None
    _Fault.plan, _Fault.seen = ['A'], []   # always the first shown: a flip with the order, so a tie
    assert {x['winner'] for x in judge_pairs(j, CMP, 'x', 'y')} == {'tie'}

def test_agreement_with_votes():
    js = [dict(prompt='p', outputs={'x': '1', 'y': '2'}, winner='y'), dict(prompt='q', outputs={'x': '1', 'y': '2'},
                                                                             winner='tie'),
          dict(prompt='r', outputs={'x': '1', 'y': '2'}, winner='invalid')]
    vs = [dict(prompt='p', outputs={'x': '1', 'y': '2'}, winner='y'), dict(prompt='q', outputs={'x': '1', 'y': '2'},
                                                                             winner='both_bad'),
          dict(prompt='r', outputs={'x': '1', 'y': '2'}, winner='x')]
    assert agreement(js, vs) == dict(n=2, agree=2, rate=1.0, invalid=1)
