"""Bad datasets: each gets lora_nb's DataError saying what and where, and the user's file is left as it was
(hand-written)."""
import json
import pytest
from transformers import AutoTokenizer
from lora_nb.data import DataError, prepare, read_source
from lora_nb.models import EMBEDDED_MODEL
from conftest import tree_digest

@pytest.fixture(scope='module')
def tok(): return AutoTokenizer.from_pretrained(EMBEDDED_MODEL)

def _write(tmp_path, name, text):
    p = tmp_path/name
    if isinstance(text, bytes): p.write_bytes(text)
    else: p.write_text(text)
    return p

CASES = [
    ('bad.jsonl', '{"text": "ok"}\n{"text": "broken\n', None, 'bad.jsonl:2:'),
    ('list.jsonl', '{"text": "ok"}\n[1, 2]\n', None, 'Line 2 is a list'),
    ('obj.json', '{"a": 1, "b": 2}', None, 'list of examples'),
    ('trunc.json', '[{"text": "a"}, {"text": ', None, 'trunc.json:1:'),
    ('cols.csv', 'question,answer\nq,a\n', None, "fields ['answer', 'question']"),
    ('data.xlsx', 'hello', None, "Unknown file type '.xlsx'"),
    ('num.jsonl', json.dumps({'instruction': 'Add 2 and 2', 'output': 4}) + '\n', None, '`output` is a int'),
    ('parts.jsonl', json.dumps({'messages': [{'role': 'user', 'content': [{'type': 'image_url'}]},
                                             {'role': 'assistant', 'content': 'a cat'}]}) + '\n', None,
     'message 1 has image_url parts'),
    ('dpo.jsonl', json.dumps({'prompt': 'q', 'chosen': 'good', 'rejected': 'bad'}) + '\n', None,
     'paired preference data'),
    ('kto.jsonl', json.dumps({'prompt': 'q', 'completion': 'bad', 'label': False}) + '\n', None,
     'unpaired preference data'),
    ('map.jsonl', json.dumps({'question': 'q', 'answer': 'a'}) + '\n', {'columns': {'output': 'reply'}},
     "`columns` names ['reply']"),
    ('bad.parquet', b'PAR1 cut short', None, "Can't read the parquet file"),
    ('empty.jsonl', '\n\n', None, 'empty'),
    ('roles.jsonl', json.dumps({'messages': [{'role': 'wizard', 'content': 'x'}]}) + '\n', None,
     "unknown roles ['wizard']"),
    ('msgs.jsonl', json.dumps({'messages': 'hello'}) + '\n', None, "messages must be a list"),
    ('missing.jsonl', json.dumps({'instruction': 'a', 'output': 'b'}) + '\n' + json.dumps({'instruction': 'c'}) + '\n',
     None, 'Example 2 has no `output`'),
    ('fmt.jsonl', json.dumps({'text': 'a'}) + '\n', {'format': 'dialogue'}, "Unknown format 'dialogue'"),
    ('tpl.jsonl', json.dumps({'instruction': 'a', 'output': 'b'}) + '\n', {'template': 'vicuna'},
     "Unknown template 'vicuna'"),
    ('latin1.jsonl', '{"text": "ok"}\n{"text": "café"}\n'.encode('latin-1'), None,
     'not UTF-8 text (byte 0xe9 on line 2)'),
    ('latin1.csv', 'text\ncafé\n'.encode('latin-1'), None, 'not UTF-8 text'),
    ('noreply.jsonl', json.dumps({'messages': [{'role': 'user', 'content': 'hi'}]}) + '\n', None,
     'have no assistant turn (examples 1)'),
    ('masked.jsonl', json.dumps({'prompt': 'word ' * 80, 'completion': 'x'}) + '\n', {'max_length': 16},
     'Every label is masked'),
    ('kto_msgs.jsonl', json.dumps({'messages': [{'role': 'user', 'content': 'q'},
                                                {'role': 'assistant', 'content': 'a'}], 'label': False}) + '\n', None,
     "format='kto'"),
    ('openai_dpo.jsonl', json.dumps({'input': {'messages': [{'role': 'user', 'content': 'q'}]},
                                     'preferred_output': [{'role': 'assistant', 'content': 'a'}],
                                     'non_preferred_output': [{'role': 'assistant', 'content': 'b'}]}) + '\n', None,
     "format='dpo'"),
    ('images.jsonl', json.dumps({'text': 'a cat', 'image': {'bytes': None, 'path': 'cat.png'}}) + '\n', None,
     '`image` hold images'),
    ('cut.jsonl', ''.join(json.dumps({'prompt': 'word ' * 80, 'completion': 'x'}) + '\n' for _ in range(2)) +
     json.dumps({'prompt': 'a', 'completion': 'b'}) + '\n', {'max_length': 16},
     '2 of 3 examples (67%) would not train'),
    ('split.jsonl', json.dumps({'text': 'a'}) + '\n' + json.dumps({'text': 'b'}) + '\n', {'eval_size': 2},
     'leaves no training examples'),
]

@pytest.mark.parametrize('name,text,kw,match', CASES, ids=[c[0] for c in CASES])
def test_bad_dataset(tmp_path, tok, name, text, kw, match):
    p = _write(tmp_path, name, text)
    before = tree_digest(tmp_path)
    with pytest.raises(DataError) as e: prepare(p, tok, **(kw or {}))
    assert match in str(e.value), str(e.value)
    assert e.value.hint or e.value.where
    assert tree_digest(tmp_path) == before

def test_missing_file(tok):
    with pytest.raises(DataError, match='does not exist'): prepare('no/such/data.jsonl', tok)

def test_chat_data_with_a_tokenizer_without_template(tok):
    bare = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    bare.chat_template = None
    with pytest.raises(DataError, match='no chat template') as e:
        prepare([{'instruction': 'a', 'output': 'b'}], bare, eval_size=0)
    assert 'chatml' in e.value.hint
    p = prepare([{'instruction': 'a', 'output': 'b'}], bare, template='chatml', eval_size=0)
    ex = p.train[0]
    assert bare.decode([l for l in ex.labels if l != -100]) == 'b<|end|>'

def test_every_source_kind_reads_the_same(tmp_path):
    import pandas as pd
    from datasets import Dataset
    recs = [{'prompt': 'p1', 'completion': 'c1'}, {'prompt': 'p2', 'completion': 'c2'}]
    (tmp_path/'d.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in recs))
    (tmp_path/'d.json').write_text(json.dumps(recs))
    pd.DataFrame(recs).to_csv(tmp_path/'d.csv', index=False)
    pd.DataFrame(recs).to_parquet(tmp_path/'d.parquet')
    pasted = '\n'.join(json.dumps(r) for r in recs)
    for src in [tmp_path/'d.jsonl', str(tmp_path/'d.json'), tmp_path/'d.csv', tmp_path/'d.parquet', recs,
                pd.DataFrame(recs), Dataset.from_list(recs), pasted]:
        assert read_source(src) == recs, type(src)

def test_long_examples_lint_states_the_policy(tok):
    from lora_nb.data import lint
    p = prepare([{'prompt': 'hi', 'completion': 'word ' * 80}, {'prompt': 'a', 'completion': 'b'}], tok, eval_size=0,
                max_length=32)
    rep = lint(p, tok)
    assert rep.truncated == [1] and len(p.train[0].input_ids) == 32 and p.train[0].truncated
    assert any('the first max_length tokens are kept' in line for line in rep.problems())

def test_hub_dataset_ids_and_dataset_folders(tmp_path, tok):
    "A Hub id in the API or YAML goes to `datasets`; offline and not cached it fails at once, naming the id."
    from lora_nb.config import RunConfig
    cfg = RunConfig.from_dict({'data': {'source': 'nobody/no-such-dataset', 'split': 'train[:10]'}})
    assert cfg.data.source == 'nobody/no-such-dataset'                     # not joined to the config's folder
    with pytest.raises(DataError, match="Can't download dataset 'nobody/no-such-dataset'"):
        prepare(cfg.data.read(), tok, **cfg.data.prepare_kwargs())
    repo = tmp_path/'alpaca-like'
    (repo/'data').mkdir(parents=True)
    rows = [{'instruction': f'Say {w}.', 'output': w} for w in ('yes', 'no', 'maybe', 'never')]
    (repo/'data'/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    p = prepare(str(repo), tok, split='train[:3]', eval_size=0)
    assert len(p.train) == 3 and p.format == 'instruction' and p.settings['split'] == 'train[:3]'

CACHED = r'''
import json, sys
from transformers import AutoTokenizer
from lora_nb.data import prepare
from lora_nb.models import EMBEDDED_MODEL
p = prepare('acme/tiny-alpaca', AutoTokenizer.from_pretrained(EMBEDDED_MODEL), split='train[:3]', eval_size=0)
print(json.dumps([p.records, p.format, p.settings['split']]))
'''

def test_hub_id_from_a_populated_datasets_cache(tmp_path):
    "With no Hub, a dataset id that `datasets` cached earlier loads from that cache (the layout an online load leaves)."
    import os, subprocess, sys
    rows = [{'instruction': f'Say {w}.', 'output': w} for w in ('yes', 'no', 'maybe', 'never')]
    (tmp_path/'src'/'tiny-alpaca').mkdir(parents=True)
    (tmp_path/'src'/'tiny-alpaca'/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    # HF_ENDPOINT on a closed loopback port: the Hub is unreachable here whatever the machine's network
    env = {**os.environ, 'HF_HOME': str(tmp_path/'hf'), 'HF_ENDPOINT': 'http://127.0.0.1:9'}
    def run(code): return subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                                         timeout=300)
    made = run(f"import datasets; datasets.load_dataset({str(tmp_path/'src'/'tiny-alpaca')!r}, split='train')")
    assert made.returncode == 0, made.stderr[-2000:]
    cache = tmp_path/'hf'/'datasets'
    (cache/'tiny-alpaca').rename(cache/'acme___tiny-alpaca')   # where `datasets` keeps the Hub's acme/tiny-alpaca
    got = run(CACHED)
    assert got.returncode == 0, got.stderr[-2000:]
    recs, fmt, split = json.loads(got.stdout.strip().splitlines()[-1])
    assert recs == rows[:3] and fmt == 'instruction' and split == 'train[:3]'
    empty = run(CACHED.replace('acme/tiny-alpaca', 'acme/not-cached'))
    assert empty.returncode and "Can't download dataset 'acme/not-cached'" in empty.stderr, empty.stderr[-2000:]
