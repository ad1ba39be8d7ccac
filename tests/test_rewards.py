"""Rewards (hand-written): every preset on right, wrong and edge answers (text and chat completions), both forms, the
code-test runner's limits and guards, bad rewards, try_reward's verdict and names for YAML."""
import math, os, tempfile, time
import pytest
from lora_nb.errors import LoraNbError
from lora_nb.rewards import (Reward, RewardError, as_reward, check_rewards, code_tests, constant_rewards, exact,
                             extract_code, format_tags, json_valid, length_band, number, regex, reward, reward_source,
                             run_code, tagged, text_of, try_reward)

def chat(text): return [{'role': 'assistant', 'content': text}]

def score(r, completions, **cols):
    "The reward on text completions and on the same completions as chats (they must agree)."
    text = r(['q'] * len(completions), completions, **cols)
    assert r(['q'] * len(completions), [chat(c) for c in completions], **cols) == text
    return text

# presets: right, wrong, edge

@pytest.mark.parametrize('r, completions, cols, want', [
    (exact(), ['Paris', ' the paris! ', 'Lyon', ''], dict(answer=['Paris'] * 4), [1, 1, 0, 0]),
    (exact(normalise=False), ['Paris', ' Paris\n', 'paris', 'the Paris'], dict(answer=['Paris'] * 4), [1, 1, 0, 0]),
    (exact('label'), ['B', 'b.', 'C'], dict(label=[['A', 'B']] * 3), [1, 1, 0]),
    (regex(r'\d{3}'), ['call 555', 'call 55', '5 5 5'], {}, [1, 0, 0]),
    (regex(r'[A-D]', full=True), [' C ', 'C.', 'E'], {}, [1, 0, 0]),
    (json_valid(), ['{"a": 1}', '```json\n[1]\n```', "{'a': 1}", ''], {}, [1, 1, 0, 0]),
    (json_valid({'type': 'object', 'required': ['a']}), ['{"a": 1}', '{"b": 1}', '[1]'], {}, [1, 0, 0]),
    (number(), ['It is 1,234.', 'maybe 1234.5', 'no number', '-1234'], dict(answer=['1234'] * 4), [1, 0, 0, 0]),
    (number('x', tolerance=0.5), ['2.4', '2.6', '1.9'], dict(x=[2, 2, 2]), [1, 0, 1]),
    (number(tolerance=0.01, relative=True), ['1009', '1011'], dict(answer=[1000, 1000]), [1, 0]),
    (length_band(2, 3), ['a', 'a b', 'a b c', 'a b c d', ''], {}, [0, 1, 1, 0, 0]),
    (length_band(0, 3, 'chars'), ['', 'abc', 'abcd'], {}, [1, 1, 0]),
    (length_band(1, 2, 'lines'), ['a', 'a\nb', 'a\nb\nc'], {}, [1, 1, 0]),
    (format_tags(), ['<answer>4</answer>', 'x <answer>4</answer> y', '<answer>4</answer><answer>4</answer>',
                     '<answer></answer>', '</answer>4<answer>', '<answer>4', '4'], {}, [1, 1, 0, 0, 0, 0, 0]),
    (format_tags('think'), ['<think>hm</think> 4', '<answer>4</answer>'], {}, [1, 0]),
])
def test_presets(r, completions, cols, want):
    assert score(r, completions, **cols) == [float(w) for w in want]

def test_presets_reuse_the_metrics_definitions():
    "A reward and an evaluation agree on what is right: the same normalisation and number reading."
    from lora_nb.metrics import PRESETS, last_number, normalise
    assert normalise('The  Answer: D.') == 'answer d'
    assert exact()(['q'], ['The  Answer: D.'], answer=['answer d']) == [1]
    assert last_number('x 1,234.5 y') == 1234.5 and number()(['q'], ['x 1,234.5 y'], answer=['1234.5']) == [1]
    assert PRESETS['json_valid'].fn('```\n{}\n```', None, {}) == json_valid()(['q'], ['```\n{}\n```'])[0] == 1

def test_preset_edges():
    with pytest.raises(RewardError, match="column `answer`, which the data doesn't have") as e:
        exact()(['q'], ['4'], label=['4'])
    assert 'label' in e.value.hint
    with pytest.raises(RewardError, match='has no number'): number()(['q'], ['4'], answer=['four'])
    with pytest.raises(RewardError, match='Bad regular expression'): regex('(')
    with pytest.raises(RewardError, match='lo <= hi'): length_band(5, 2)
    with pytest.raises(RewardError, match='Unknown unit'): length_band(1, 2, 'tokens')
    assert tagged('a <b>x</b>', 'b') == 'x' and tagged('<b> </b>', 'b') is None
    assert text_of(None) == '' and text_of([{'role': 'user', 'content': 'hi'}, *chat('yo')]) == 'yo'
    parts = [{'type': 'text', 'text': 'a'}, {'type': 'text', 'text': 'b'}]
    assert text_of({'role': 'assistant', 'content': parts}) == 'ab'

# the two forms

def test_single_form_gets_text_and_row_without_trl_extras():
    seen = []
    def f(prompt, completion, **row):
        seen.append((prompt, completion, row))
        return len(completion)
    r = as_reward(f)
    assert not r.batched and r.__name__ == 'f'
    out = r(prompts=['p0', 'p1'], completions=['ab', chat('xyz')], completion_ids=[[1], [2]], answer=['a', 'b'],
            trainer_state=object(), log_extra=print, log_metric=print)
    assert out == [2.0, 3.0]
    assert seen == [('p0', 'ab', {'answer': 'a'}), ('p1', 'xyz', {'answer': 'b'})]

def test_batched_form_gets_what_trl_passes():
    got = {}
    def f(prompts, completions, answer, **kw):
        got.update(kw, prompts=prompts)
        return [float(text_of(c) == a) for c, a in zip(completions, answer)]
    r = as_reward(f)
    assert r.batched
    assert r(['p', 'q'], [chat('a'), 'x'], answer=['a', 'b'], trainer_state='state') == [1.0, 0.0]
    assert got == {'prompts': ['p', 'q'], 'trainer_state': 'state'}

def test_functions_get_only_the_columns_they_name():
    assert as_reward(lambda completion, answer: completion == answer)(['q'] * 2, ['a', 'b'], answer=['a', 'a'],
                                                                      other=[1, 2]) == [1.0, 0.0]
    assert as_reward(lambda completions: [1] * len(completions))(['q'], ['c'], x=[1]) == [1.0]

def test_trl_reads_a_reward_as_its_own():
    "GRPOTrainer names each reward by `get_callable_name` and awaits it only if `is_async_callable`."
    from trl.trainer.utils import get_callable_name, is_async_callable
    for r in (exact('label'), as_reward(lambda completion: 1.0, name='mine'), code_tests()):
        assert get_callable_name(r) == r.name and not is_async_callable(r)

def test_form_detection_and_explicit_form():
    with pytest.raises(RewardError, match="Can't tell whether") as e: as_reward(lambda a, b: 0.0)
    assert 'batched=True' in e.value.hint
    assert as_reward(lambda a, b: len(b), batched=False)(['q'], ['abc']) == [3.0]
    assert as_reward(lambda a, b: [len(x) for x in b], batched=True)(['q', 'q'], ['a', 'ab']) == [1.0, 2.0]
    with pytest.raises(RewardError, match='not a int'): as_reward(3)
    r = exact()
    assert as_reward(r) is r and reward(r) is r

# bad rewards

@pytest.mark.parametrize('bad, why', [(float('nan'), 'returned nan'), (None, "returned NoneType 'None'"),
                                      ('1.0', "returned str '1.0'"), (float('inf'), 'returned inf'),
                                      ([1.0], 'returned list')])
def test_a_bad_value_names_the_reward_and_the_example(bad, why):
    def picky(prompt, completion, **row): return bad if completion == 'bad' else 1.0
    with pytest.raises(RewardError) as e: as_reward(picky)(['q'] * 3, ['ok', 'ok', 'bad'])
    assert isinstance(e.value, LoraNbError) and (e.value.reward, e.value.index) == ('picky', 2)
    assert f"Reward `picky` {why}" in e.value.what and 'example 2' in e.value.what and "'bad'" in e.value.what

def test_a_raise_names_the_reward_the_example_and_the_last_line():
    def divide(prompt, completion, **row): return 1 / len(completion)
    with pytest.raises(RewardError) as e: as_reward(divide)(['q'] * 3, ['a', 'bb', ''])
    err = e.value
    assert (err.reward, err.index, err.last_line) == ('divide', 2, 'ZeroDivisionError: division by zero')
    assert 'raised on example 2' in err.what and err.where.endswith(f"test_rewards.py:{divide.__code__.co_firstlineno}")
    assert isinstance(err.__cause__, ZeroDivisionError)

def test_a_batched_raise_is_located_or_said_to_be_the_batch():
    def first_letter(completions, **kw): return [ord(text_of(c)[0]) / 200 for c in completions]
    with pytest.raises(RewardError, match=r"raised on example 1 \(completion ''\): IndexError") as e:
        as_reward(first_letter)(['q'] * 3, ['a', '', 'b'])
    assert e.value.index == 1
    def whole_batch(completions, **kw):
        if len(completions) < 3: raise RuntimeError('the batch is too small')
        return [0.0] * len(completions)
    with pytest.raises(RewardError, match='raised on a batch of 2: RuntimeError: the batch is too small') as e:
        as_reward(whole_batch)(['q'] * 2, ['a', 'b'])
    assert e.value.index is None

def test_check_rewards():
    assert check_rewards((1, True, 0.25), 3) == [1.0, 1.0, 0.25]
    with pytest.raises(RewardError, match='returned 2 values for 3 completions'): check_rewards([1, 2], 3, 'r')
    with pytest.raises(RewardError, match='returned a float for 1'): check_rewards(1.0, 1, 'r')
    with pytest.raises(RewardError, match='returned a str'): check_rewards('1', 1, 'r')
    import numpy as np
    assert check_rewards(np.array([0.5, 1]), 2) == [0.5, 1.0]
    assert not math.isnan(check_rewards([np.float32(0.5)], 1)[0])

# code tests

@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    "Sandbox folders made under a fresh folder, to see that nothing is left behind."
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    yield tmp_path
    assert list(tmp_path.iterdir()) == []

def test_code_tests_pass_and_fail(scratch_root):
    r = code_tests(timeout=10)
    comps = ["Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.", 'def add(a, b): return a - b',
             chat('```py\nadd = lambda a, b: b + a\n```'), 'I cannot do that.', 'def add(a, b):\n  return a +']
    tests = ['assert add(2, 3) == 5\nassert add(-1, 1) == 0'] * 5
    assert r(['Write add.'] * 5, comps, tests=tests) == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert code_tests('checks', timeout=10)(['q'], ['x = 1'], checks=[['assert x == 1', 'assert x > 0']]) == [1.0]

def test_code_tests_need_tests(scratch_root):
    with pytest.raises(RewardError, match="reads the column `tests`"): code_tests()(['q'], ['x = 1'], answer=['1'])
    with pytest.raises(RewardError, match='Example 1 has no tests') as e:
        code_tests()(['q'] * 2, ['x = 1'] * 2, tests=['assert x', '  '])
    assert e.value.index == 1

def test_leaving_early_is_not_a_pass(scratch_root):
    for code in ('import sys; sys.exit(0)', 'import os; os._exit(0)', 'raise SystemExit', 'quit()'):
        assert not run_code(code, 'assert False', timeout=10).passed, code
    assert run_code('import sys; print("hi"); sys.stdout.flush()', 'assert 1', timeout=10).output == 'hi'

def test_an_infinite_loop_is_killed_within_the_limit(scratch_root):
    t0 = time.monotonic()
    r = run_code('while True: pass', 'assert True', timeout=1.0)
    assert r.timed_out and not r.passed and r.why.startswith('timed out')
    assert time.monotonic() - t0 < 4

def test_a_memory_hog_is_refused(scratch_root):
    r = run_code('big = bytearray(2 * 1024**3)', 'assert len(big)', timeout=10, memory_mb=256)
    assert not r.passed and 'MemoryError' in r.why
    assert run_code('small = bytearray(16 * 1024**2)', 'assert len(small)', timeout=10, memory_mb=256).passed

@pytest.mark.parametrize('code', ["import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)",
                                  'import socket; socket.socket()', 'import _socket; _socket.socket()',
                                  "import socket; socket.getaddrinfo('example.com', 80)",
                                  'import urllib.request; urllib.request.urlopen("http://127.0.0.1:9", timeout=1)'])
def test_the_network_is_refused(scratch_root, code):
    r = run_code(code, 'assert True', timeout=10)
    assert not r.passed and 'lora_nb sandbox' in r.output, r.output

@pytest.mark.parametrize('code', ['import subprocess; subprocess.run(["true"])', 'import os; os.system("true")',
                                  'import os; os.fork()', 'import os, signal; os.kill(os.getppid(), 0)'])
def test_processes_are_refused(scratch_root, code):
    r = run_code(code, 'assert True', timeout=10)
    assert not r.passed and 'lora_nb sandbox' in r.output, r.output

def test_writes_stay_in_the_scratch_folder(scratch_root, tmp_path_factory):
    outside = tmp_path_factory.mktemp('outside')
    target = f'/tmp/outside-xyz-{os.getpid()}'
    for code in (f"open({target!r}, 'w')", f"open({str(outside / 'f')!r}, 'a')",
                 f"import pathlib; pathlib.Path({str(outside / 'p')!r}).write_text('x')",
                 f"import os; os.open({str(outside / 'o')!r}, os.O_WRONLY | os.O_CREAT)",
                 f"import os; os.chdir({str(outside)!r}); open('rel', 'w')",
                 f"import os; os.symlink({str(outside / 'l')!r}, 'link'); open('link', 'w')",
                 f"import os; os.mkdir({str(outside / 'd')!r})", f"import shutil; shutil.rmtree({str(outside)!r})",
                 "import os; open(os.path.expanduser('~/../escape'), 'w')"):
        r = run_code(code, 'assert True', timeout=10)
        assert not r.passed and 'writing outside the scratch folder is refused' in r.output, (code, r.output)
    assert not os.path.exists(target) and outside.exists() and list(outside.iterdir()) == []
    inside = ("import os, pathlib, tempfile\nopen('a.txt', 'w').write('x')\npathlib.Path('b').mkdir()\n"
              "pathlib.Path('b/c.txt').write_text('y')\nos.rename('a.txt', 'b/a.txt')\n"
              "open(os.path.expanduser('~/h'), 'w').close()\ntempfile.NamedTemporaryFile().close()\n"
              "open(os.devnull, 'w').write('z')")
    r = run_code(inside, "assert open('b/a.txt').read() + open('b/c.txt').read() == 'xy'", timeout=10)
    assert r.passed, r.output

def test_the_child_is_isolated(scratch_root):
    probe = ("import os, sys\nassert sys.flags.isolated and os.getcwd() == os.environ['HOME'] == os.environ['TMPDIR']\n"
             "assert set(os.environ) <= {'PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_ALL', 'OMP_NUM_THREADS',\n"
             "  'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'}, os.environ\nassert sys.stdin.read() == ''\n"
             "assert __name__ == 'solution' and open(os.__file__).read()")
    r = run_code(probe, 'assert True', timeout=10)
    assert r.passed, r.output

def test_extract_code():
    assert extract_code('```python\na = 1\n```\n```python\nb = 2\n```') == 'a = 1\n'
    assert extract_code('text\n```\nc = 3\n```') == 'c = 3\n'
    assert extract_code('```python\nd = 4') == 'd = 4'   # cut off by max_completion_length
    assert extract_code('```bash\nls\n```\nx = 1') == '```bash\nls\n```\nx = 1'

# try_reward

def test_try_reward_flags_a_constant_reward():
    data = [{'prompt': 'What is 2+2?', 'answer': '4'}]
    comps = ['<answer>4</answer>', '<answer>5</answer>', '<answer>four</answer>']
    t = try_reward(['format_tags', number()], data, completions=comps)
    assert t.values == {'format_tags': [1.0, 1.0, 1.0], 'number': [1.0, 0.0, 0.0]} and t.prompts == ['What is 2+2?'] * 3
    assert constant_rewards(t) == ["`format_tags` gives 1 to all 3 completions: it can't teach anything: every "
                                   "completion gets the same reward"]
    assert t.verdict == constant_rewards(t)
    assert "✗ `format_tags` gives 1" in repr(t) and '<table>' in t._repr_html_()
    varied = try_reward(number(), data, completions=comps)
    assert constant_rewards(varied) == [] and '✓' in repr(varied)

def test_try_reward_keeps_a_failing_reward_as_its_error():
    def broken(prompt, completion, **row): return {'oops': 1}
    t = try_reward([broken, 'length_band:1-2'], ['Say hi.', 'Say bye.'], completions=['hi', 'bye now friend'])
    assert t.values['broken'] == [None, None] and 'returned dict' in t.errors['broken']
    assert t.verdict[0].startswith('`broken` failed: Reward `broken` returned dict') and constant_rewards(t) == []
    assert '—' in repr(t)

def test_try_reward_passes_the_columns():
    seen = {}
    def look(prompts, completions, **cols):
        seen.update(cols, completions=completions)
        return [0.0, 1.0]
    data = [{'prompt': [{'role': 'user', 'content': 'Hi'}], 'answer': 'x'}, {'prompt': 'Yo', 'answer': 'y'}]
    try_reward(look, data, completions=['a', 'b'])
    assert seen == {'answer': ['x', 'y'], 'completions': ['a', 'b']}

def test_try_reward_needs_something_to_score():
    with pytest.raises(RewardError, match='Nothing to score'): try_reward('exact', [{'prompt': 'q', 'answer': 'a'}])
    with pytest.raises(RewardError, match="Can't read prompts"): try_reward('exact', 42, completions=['a'])

def test_try_reward_samples_from_a_model(lm):
    data = [{'prompt': [{'role': 'user', 'content': 'Reverse the word loop.'}]}]
    t, again = [try_reward(['length_band:1-1000', 'format_tags'], data, n=3, model=lm.model, tokenizer=lm.tokenizer,
                           max_new_tokens=8, seed=1) for _ in range(2)]
    assert len(t.completions) == 3 and all(isinstance(c, str) for c in t.completions)
    assert len(set(t.completions)) > 1, t.completions   # sampled, not greedy
    assert t.completions == again.completions   # seeded
    assert any('format_tags' in v for v in constant_rewards(t))

# names and source

def test_names_resolve_and_round_trip():
    names = ['exact', 'exact:label', 'exact_strict', 'exact_strict:y', 'regex:a:b', 'regex_full:[0-9]+', 'json_valid',
             'number', 'number:total', 'length_band:3-9', 'length_band:1-80:chars', 'format_tags', 'format_tags:code',
             'code_tests', 'code_tests:checks']
    assert [reward(n).name for n in names] == names
    assert reward('regex:a:b')(['q'] * 2, ['xa:by', 'ab']) == [1.0, 0.0]
    assert reward('exact:label')(['q'], ['B'], label=['b']) == [1.0]

def test_module_function_names():
    r = reward('lora_nb.rewards:text_of')
    assert isinstance(r, Reward) and r.name == 'text_of' and not r.batched
    import __main__
    __main__.my_notebook_reward = lambda completion, **row: float('4' in completion)
    try: assert reward('__main__:my_notebook_reward')(['q'] * 2, ['4', '5']) == [1.0, 0.0]
    finally: del __main__.my_notebook_reward

@pytest.mark.parametrize('spec, match', [('exactly', "Unknown reward 'exactly'"), ('nosuchmodule:f', 'Unknown reward'),
                                         ('lora_nb.rewards:nothing', 'Unknown reward'), ('regex', 'needs a pattern'),
                                         ('number:0.01', "names a column"), ('length_band:9', 'Bad length band'),
                                         (3.5, 'a name or a function')])
def test_unknown_names_are_clear(spec, match):
    with pytest.raises(RewardError, match=match) as e: reward(spec)
    assert e.value.hint

def test_reward_source():
    src = reward_source(reward('exact:label'))
    assert src.startswith("from lora_nb.rewards import exact\nexact_label = exact(column='label', normalise=True)")
    ns = {}
    exec(src, ns)
    assert ns['exact_label'](['q'], ['B'], label=['b']) == [1.0]
    def mine(prompt, completion, **row):
        "Mine."
        return 1.0
    assert reward_source(mine).lstrip().startswith('def mine(prompt, completion, **row):')
    assert reward_source(as_reward(mine)) == reward_source(mine)
    assert reward_source(len) == '# builtins.len: source not available\n# Return the number of items in a container.\n'
