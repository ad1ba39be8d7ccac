"""Issue 24, parts 2 and 3: no row goes untrained without a word, useless preference data is refused, peer formats are
read (or refused with a hint that works on the same file); and a prepared dataset's repr and memory stay small
(hand-written; the real tokenizer and TRL's own preprocessing, no mocks)."""
import json, random, re, tracemalloc
import pytest
from transformers import AutoTokenizer
from lora_nb.data import DataError, fingerprint, prepare, read_source
from lora_nb.sources import _jsonl
from lora_nb.models import EMBEDDED_MODEL
from lora_nb.prefer import PreferError

@pytest.fixture(scope='module')
def tok(): return AutoTokenizer.from_pretrained(EMBEDDED_MODEL)

def _long_prompts(n=60, seed=0):
    "Pairs whose prompts run from a few words to a couple of hundred: many reach max_length=128."
    rng = random.Random(seed)
    words = lambda: ' '.join(rng.choice(['alpha', 'beta', 'gamma', 'delta']) for _ in range(rng.randint(5, 200)))
    return [{'prompt': words() + '?', 'chosen': 'yes', 'rejected': 'no'} for _ in range(n)]

def _refusal(f) -> DataError:
    with pytest.raises(DataError) as e: f()
    return e.value

def _trl_kept(data, method) -> int:
    "How many training rows TRL's own trainer keeps after its preprocessing (on a freshly loaded model)."
    from lora_nb.models import load_model
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer
    from peft import LoraConfig, get_peft_model
    cfg, cls = (DPOConfig, DPOTrainer) if method == 'dpo' else (KTOConfig, KTOTrainer)
    args = cfg(output_dir='unused', max_length=data.settings['max_length'], report_to=[], dataset_num_proc=None,
               use_cpu=True, bf16=False)
    lm = load_model(quantization='none')
    model = get_peft_model(lm.model, LoraConfig(r=4, target_modules=['q_proj']))
    train, _ = data.to_datasets()
    return len(cls(model=model, args=args, train_dataset=train, processing_class=lm.tokenizer).train_dataset)

@pytest.mark.parametrize('method', ['dpo', 'kto'])
def test_preference_rows_trl_drops_are_counted_before_training(tok, method):
    "prepare names the rows TRL would drop (prompt reaches max_length), refuses past `max_dropped`; TRL keeps the rest."
    rows = _long_prompts()
    e = _refusal(lambda: prepare(rows, tok, format=method, max_length=128, eval_size=0))
    assert 'would not train' in e.what and 'TRL drops them' in e.what, e.what
    allow = re.search(r'`max_dropped=([\d.]+)`', e.hint)[1]
    need = int(re.search(r'`max_length` to (\d+)', e.hint)[1])
    data = prepare(rows, tok, format=method, max_length=128, eval_size=0, max_dropped=float(allow))
    per_record = 2 if method == 'kto' else 1
    assert data.dropped and len(data.rows_train) == (len(rows) - len(data.dropped)) * per_record
    assert _trl_kept(data, method) == len(data.rows_train)          # nothing more goes inside TRL
    full = prepare(rows, tok, format=method, max_length=need, eval_size=0)   # the hinted max_length keeps all
    assert not full.dropped and _trl_kept(full, method) == len(rows) * per_record

def test_sft_examples_cut_before_their_answer_are_named_and_refused(tok):
    rows = [{'instruction': 'word ' * 80, 'output': 'x'}] * 4 + [{'instruction': f'Say {i}.', 'output': f'{i}'}
                                                               for i in range(6)]
    e = _refusal(lambda: prepare(rows, tok, max_length=32, eval_size=0))
    assert '4 of 10 examples (40%) would not train' in e.what and 'examples 1, 2, 3, 4' in e.what, e.what
    need = int(re.search(r'`max_length` to (\d+)', e.hint)[1])
    assert len(prepare(rows, tok, max_length=need, eval_size=0).train) == 10
    p = prepare(rows, tok, max_length=32, eval_size=0, max_dropped=0.4)
    assert len(p.train) == 6 and p.drops() == {'count': 4, 'of': 10,
                                               'rows': {'cut at max_length=32 before their answer': [1, 2, 3, 4]}}
    assert p.settings['max_dropped'] == 0.4
    empty = [{'instruction': 'q', 'output': ''}] + rows[4:]
    assert 'empty answer' in repr(prepare(empty, tok, eval_size=0))

def test_run_json_names_what_will_not_train(tmp_path, tok):
    from lora_nb.models import load_model
    from lora_nb.train import Session, LoraSettings, TrainSettings
    lm = load_model(quantization='none')
    rows = [{'instruction': 'word ' * 80, 'output': 'x'}] + [{'instruction': f'Say {i}.', 'output': f'{i}'}
                                                           for i in range(7)]
    data = prepare(rows, lm.tokenizer, max_length=32, eval_size=0)
    s = Session(lm, data, LoraSettings(r=4, lora_alpha=8), TrainSettings(max_steps=1, per_device_train_batch_size=4),
                root=tmp_path)
    s.start(background=False)
    info = s.run.info()
    assert info['train_examples'] == 7
    assert info['dropped'] == {'count': 1, 'of': 8, 'rows': {'cut at max_length=32 before their answer': [1]}}

PAIRS = [{'prompt': f'What is {a} + {b}?', 'chosen': str(a + b), 'rejected': str(a + b + 1)}
         for a in range(4) for b in range(3)]

@pytest.mark.parametrize('rows,method,match', [
    ([{**r, 'rejected': r['chosen']} for r in PAIRS], 'dpo', 'loss 0.6931'),
    ([{**r, 'rejected': r['chosen'] + ' '} for r in PAIRS], 'kto', 'loss 0.6931'),
    ([{**r, 'chosen': ''} for r in PAIRS[:3]] + PAIRS, 'dpo', '3 of 15 rows have an empty chosen'),
    ([{'prompt': r['prompt'], 'completion': r['rejected'], 'label': False} for r in PAIRS], 'kto', 'labelled bad'),
    ([{'prompt': r['prompt'], 'completion': r['chosen'], 'label': True} for r in PAIRS], 'kto', 'labelled good'),
    ([{'prompt': r['prompt'], 'completion': r['rejected'], 'label': i == 0} for i, r in enumerate(PAIRS)], 'kto',
     'at least 2 good answers'),
], ids=['same-dpo', 'same-kto', 'empty-chosen', 'kto-all-bad', 'kto-all-good', 'kto-one-good'])
def test_useless_preference_data_is_refused_with_the_reason(tok, rows, method, match):
    with pytest.raises(PreferError, match=match) as e: prepare(rows, tok, format=method)
    assert e.value.hint

def test_some_identical_pairs_are_left_out_and_named(tok):
    rows = PAIRS + [{**PAIRS[0], 'prompt': 'Again?', 'rejected': PAIRS[0]['chosen']}]
    p = prepare(rows, tok, format='dpo', eval_size=0)
    assert len(p.rows_train) == 12 and list(p.dropped) == [13] and 'same chosen and rejected' in p.dropped[13]

CHAT = [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': 'a'}]
PEERS = {  # the shapes other tools write, one row each; `method` reads them
    'sharegpt': ({'conversations': [{'from': 'human', 'value': 'q{i}'}], 'chosen': {'from': 'gpt', 'value': 'a{i}'},
                  'rejected': {'from': 'gpt', 'value': 'b{i}'}}, 'dpo'),
    'sharegpt-lists': ({'conversations': [{'from': 'human', 'value': 'q{i}'}],
                        'chosen': [{'from': 'gpt', 'value': 'a{i}'}], 'rejected': [{'from': 'gpt', 'value': 'b{i}'}]},
                       'dpo'),
    'chosen_messages': ({'chosen_messages': [{'role': 'user', 'content': 'q{i}'},
                                             {'role': 'assistant', 'content': 'a{i}'}],
                         'rejected_messages': [{'role': 'user', 'content': 'q{i}'},
                                               {'role': 'assistant', 'content': 'b{i}'}]}, 'dpo'),
    'openai': ({'input': {'messages': [{'role': 'user', 'content': 'q{i}'}], 'tools': [], 'parallel_tool_calls': True},
                'preferred_output': [{'role': 'assistant', 'content': 'a{i}'}],
                'non_preferred_output': [{'role': 'assistant', 'content': 'b{i}'}]}, 'dpo'),
    'messages-label': ({'messages': [{'role': 'user', 'content': 'q{i}'}, {'role': 'assistant', 'content': 'a{i}'}],
                        'label': '{good}'}, 'kto'),
}

def _peer_file(tmp_path, shape):
    row, method = PEERS[shape]
    text = json.dumps(row)
    lines = [text.replace('{i}', str(i)).replace('"{good}"', 'true' if i % 2 else 'false') for i in range(10)]
    p = tmp_path/f'{shape}.jsonl'
    p.write_text('\n'.join(lines) + '\n')
    return p, method

@pytest.mark.parametrize('shape', list(PEERS))
def test_peer_preference_formats_read_or_refused_with_a_hint_that_works(tmp_path, tok, shape):
    f, method = _peer_file(tmp_path, shape)
    e = _refusal(lambda: prepare(f, tok, eval_size=0))                   # never trained as supervised examples
    assert 'preference data' in e.what
    fmt = re.search(r"`format='(\w+)'`", e.hint)[1]
    assert fmt == method
    p = prepare(f, tok, format=fmt, eval_size=0)                         # the hint, on the same file
    rows = p.rows_train
    if method == 'dpo':
        assert rows[0]['prompt'] == [{'role': 'user', 'content': 'q0'}], rows[0]
        assert len(rows) == 10 and rows[3]['chosen'] == [{'role': 'assistant', 'content': 'a3'}]
        assert rows[3]['rejected'] == [{'role': 'assistant', 'content': 'b3'}]
    else:
        labels = {r['prompt'][0]['content']: (r['completion'][0]['content'], r['label']) for r in rows}
        assert labels == {f'q{i}': (f'a{i}', i % 2 == 1) for i in range(10)}   # `label: false` stays bad

def test_messages_with_label_are_never_supervised_chat(tok):
    rows = [{'messages': CHAT, 'label': False}] * 3
    for fmt in (None, 'chat'):
        with pytest.raises(DataError, match="format='kto'"): prepare(rows, tok, format=fmt)
    mixed = [{'messages': CHAT}] + rows          # the label column only from the second record on
    with pytest.raises(DataError, match="format='kto'"): prepare(mixed, tok)

def test_openai_preference_tools_are_refused_not_dropped(tok):
    row = {'input': {'messages': CHAT[:1], 'tools': [{'type': 'function', 'function': {'name': 'f'}}]},
           'preferred_output': CHAT[1:], 'non_preferred_output': CHAT[1:]}
    with pytest.raises(DataError, match='input.tools'): prepare([row] * 8, tok, format='dpo')

def test_save_to_disk_folders_load(tmp_path, tok):
    from datasets import Dataset, DatasetDict
    rows = [{'instruction': f'Say {i}.', 'output': str(i)} for i in range(6)]
    Dataset.from_list(rows).save_to_disk(str(tmp_path/'one'))
    DatasetDict(train=Dataset.from_list(rows)).save_to_disk(str(tmp_path/'dict'))
    assert read_source(str(tmp_path/'one')) == rows and read_source(tmp_path/'dict') == rows
    assert read_source(str(tmp_path/'one'), split='train[:2]') == rows[:2]
    assert len(prepare(str(tmp_path/'one'), tok, eval_size=0).train) == 6

def test_a_column_of_images_is_refused_with_a_call_that_works(tmp_path, tok):
    from datasets import Dataset, Image
    rows = [{'messages': [{'role': 'user', 'content': '<image>What is it?'},
                          {'role': 'assistant', 'content': 'A cat.'}],
             'images': [{'bytes': None, 'path': 'cat.png'}]}] * 3
    f = tmp_path/'pics.jsonl'
    f.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    e = _refusal(lambda: prepare(f, tok, eval_size=0))
    assert '`images` hold images' in e.what
    call = re.search(r'`(prepare\(.*\))`', e.hint)[1].replace('...', 'eval_size=0')
    p = eval(call, {'prepare': prepare, 'read_source': read_source, 'tokenizer': tok})   # the hint, run as written
    assert len(p.train) == 3 and p.format == 'chat'
    ds = Dataset.from_dict({'text': ['a', 'b'], 'image': [{'bytes': b'\x89PNG', 'path': None}] * 2})
    ds = ds.cast_column('image', Image())
    with pytest.raises(DataError, match='`image` hold images'): prepare(ds, tok, eval_size=0)

def test_a_text_file_with_one_document_a_line(tmp_path, tok):
    (tmp_path/'docs.txt').write_text(''.join(f'Document {i} says something.\n' for i in range(5)))
    assert read_source(tmp_path/'docs.txt') == [{'text': f'Document {i} says something.'} for i in range(5)]
    (tmp_path/'paras.txt').write_text('First, on\ntwo lines.\n\nSecond.\n')
    assert read_source(tmp_path/'paras.txt') == [{'text': 'First, on\ntwo lines.'}, {'text': 'Second.'}]

def test_repr_of_a_prepared_dataset_is_a_summary(tok):
    p = prepare([{'text': f'{i} ' + 'word ' * 200} for i in range(300)], tok, eval_size=0.1)
    assert len(repr(p)) < 200 and 'Prepared: 270 train / 30 eval' in repr(p), repr(p)
    d = prepare(PAIRS, tok, format='dpo', eval_size=0)
    assert len(repr(d)) < 200 and repr(d).startswith('PreferenceData: 12 train'), repr(d)

def _peak(f) -> int:
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()

def test_a_huge_record_is_read_and_fingerprinted_without_whole_copies():
    "A 16 MB line: JSON lines are decoded in place, the fingerprint hashes its text a MiB at a time."
    big = '🦊 jumps. ' * 1_600_000
    text = json.dumps({'text': big}, ensure_ascii=False) + '\n'
    size = len(big) * 4                                 # the record's string (4 bytes a character with an emoji)
    assert _peak(lambda: _jsonl(text, 'big.jsonl')) < 1.5 * size      # the record, not the line copied too
    recs = [{'text': big}]
    assert _peak(lambda: fingerprint(recs)) < 0.8 * size              # not the whole JSON text, encoded again
