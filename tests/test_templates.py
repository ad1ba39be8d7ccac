"""Every hub chat template TRL ships, the named templates and one no library knows: `prepare` trains each reply and
its end-of-turn marker, nothing else, and lint finds no missing end (hand-written)."""
from pathlib import Path
import pytest, trl
from transformers import AutoTokenizer
from lora_nb.data import TEMPLATES, lint, prepare, DataError
from lora_nb.settings import EMBEDDED_MODEL
from lora_nb.templates import SPECIAL, TemplateError, turn_end

FOLDER = Path(trl.__file__).parent/'chat_templates'
HUB = {p.stem: p.read_text() for p in sorted(FOLDER.glob('*.jinja')) if not p.stem.endswith('_training')}
UNKNOWN = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}<|stop|>\n{% endfor %}"
           "{% if add_generation_prompt %}[assistant] {% endif %}")
ALL = {**HUB, **{f'named-{k}': k for k in TEMPLATES}, 'unknown': UNKNOWN}
MULTIMODAL = {'idefics3', 'smolvlm', 'llava_next'}   # they rewrite text content into image-and-text parts
PROBE = [{'role': 'user', 'content': 'a'}, {'role': 'assistant', 'content': 'b'}]

ALPACA = [{'instruction': 'Reverse the word loop.', 'output': 'pool'},
          {'instruction': 'Name a colour.', 'input': 'Not red.', 'output': 'Blue, of course.'}]
CHATS = [{'messages': [{'role': 'user', 'content': 'What is 2+2?'}, {'role': 'assistant', 'content': 'It is 4.'}]},
         {'messages': [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'},
                       {'role': 'assistant', 'content': 'Hello.'}, {'role': 'user', 'content': 'Say yes twice'},
                       {'role': 'assistant', 'content': 'Yes yes'}]}]

def tokenizer_for(template:str):
    "The embedded tokenizer with the special tokens `template` writes, or None for templates of multimodal content."
    tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    text = TEMPLATES.get(template, template)
    if 'bos_token' in text and tok.bos_token is None: tok.bos_token = '<|bos|>'
    try: rendered = tok.apply_chat_template(PROBE, chat_template=text, tokenize=False)
    except Exception: return None
    tok.add_special_tokens({'additional_special_tokens': sorted(set(SPECIAL.findall(rendered)))})
    return tok

def trained_runs(tok, ex) -> list[str]:
    "The decoded runs of consecutive trained tokens of example `ex`."
    runs, cur = [], []
    for i, l in zip(ex.input_ids, ex.labels):
        if l != -100: cur.append(i)
        elif cur: runs, cur = runs + [tok.decode(cur)], []
    return runs + ([tok.decode(cur)] if cur else [])

def replies(record) -> list[str]:
    if 'messages' in record: return [m['content'] for m in record['messages'] if m['role'] == 'assistant']
    return [record['output']]

@pytest.mark.parametrize('name', ALL)
@pytest.mark.parametrize('records', [ALPACA, CHATS], ids=['alpaca', 'chat'])
def test_only_replies_and_their_end_are_trained(name, records):
    tok = tokenizer_for(ALL[name])
    if tok is None: pytest.skip(f"{name} renders only multimodal content")
    template = ALL[name]
    try: p = prepare(records, tok, template=template, eval_size=0)
    except TemplateError as e:
        if name in MULTIMODAL: return
        assert 'refuses these messages' in e.what and records is CHATS, (name, e.what)   # e.g. Gemma: no system role
        return
    marker = turn_end(tok, TEMPLATES.get(template, template))
    for ex in p.train:
        runs, want = trained_runs(tok, ex), replies(records[ex.index - 1])
        assert len(runs) == len(want), (name, runs, want)
        for run, reply in zip(runs, want):
            # a token may hold the template's space before the reply and its first word ("Ġpool"): trained whole
            run = run.lstrip(' ')
            assert run.startswith(reply), (name, run, reply)
            rest = run[len(reply):].strip()
            # the marker (and only whitespace after it); with no common marker, the one special token after the reply
            assert rest == marker if marker else (not rest or SPECIAL.fullmatch(rest)), (name, run, marker)
    if marker or name == 'gptoss': assert not lint(p, tok).missing_eos, name   # GLM ends a chat with nothing

@pytest.mark.parametrize('name', ['qwen2_5', 'llama3_2', 'gemma3', 'phi3', 'unknown'])
def test_train_on_prompt_trains_every_token(name):
    tok = tokenizer_for(ALL[name])
    p = prepare(ALPACA, tok, template=ALL[name], eval_size=0, train_on_prompt=True)
    assert all(ex.labels == ex.input_ids for ex in p.train)

MARKERS = [('qwen2_5', '<|im_end|>'), ('llama3_1', '<|eot_id|>'), ('gemma', '<end_of_turn>'), ('phi3_5', '<|end|>'),
           ('cohere', '<|END_OF_TURN_TOKEN|>'), ('unknown', '<|stop|>')]

@pytest.mark.parametrize('name,marker', MARKERS)
def test_end_of_turn_markers(name, marker):
    assert turn_end(tokenizer_for(ALL[name]), ALL[name]) == marker

def test_the_old_failure_is_gone():
    "A real instruct template on alpaca data used to be refused: 'Every label is masked'."
    tok = tokenizer_for(HUB['qwen2_5'])
    tok.chat_template = HUB['qwen2_5']
    p = prepare(ALPACA, tok, eval_size=0)
    assert p.turn_end == '<|im_end|>' and all(ex.n_trained for ex in p.train)
    with pytest.raises(DataError, match='Every label is masked'):
        prepare([{'instruction': 'x', 'output': ''}], tok, eval_size=0)

@pytest.mark.slow
def test_a_local_model_with_a_hub_template_trains_and_stops_on_its_marker(tmp_path):
    "The Colab tutorial's path, offline: a model folder whose tokenizer carries Qwen2.5's template, alpaca data."
    from lora_nb.generation import compare, stop_ids
    from lora_nb.models import load_model, save_random_model
    from lora_nb.train import LoraSettings, Session, TrainSettings
    tok = tokenizer_for(HUB['qwen2_5'])
    tok.chat_template = HUB['qwen2_5']
    folder = save_random_model(tmp_path/'qwen-like', vocab_size=len(tok))
    tok.save_pretrained(folder)
    lm = load_model(folder, quantization='4bit')
    data = prepare(ALPACA * 4, lm.tokenizer, eval_size=2)
    assert data.turn_end == '<|im_end|>'
    s = Session(lm, data, LoraSettings(r=4), TrainSettings(max_steps=2, save_steps=100),
                probes=['Name a colour.'], root=tmp_path/'runs')
    assert s.start(background=False).status == 'completed', s.error
    assert lm.tokenizer.convert_tokens_to_ids('<|im_end|>') in stop_ids(lm.tokenizer, stop=data.turn_end)
    assert compare(s.lm.model, lm.tokenizer, ['Name a colour.'], max_new_tokens=4, stop=data.turn_end).outputs

def test_conversational_prompt_completion_and_a_system_column():
    "TRL's conversational prompt/completion trains the completion's reply; a `system` column leads the chat."
    tok = tokenizer_for(HUB['qwen2_5'])
    recs = [{'system': 'Be brief.', 'prompt': [{'role': 'user', 'content': 'Name a colour.'}],
             'completion': [{'role': 'assistant', 'content': 'Blue.'}]}]
    p = prepare(recs * 2, tok, template=HUB['qwen2_5'], eval_size=0)
    assert p.format == 'prompt_completion' and p.turn_end == '<|im_end|>'
    assert [r.strip() for r in trained_runs(tok, p.train[0])] == ['Blue.<|im_end|>']
    assert 'Be brief.' in tok.decode(p.train[0].input_ids)
