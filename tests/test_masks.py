"""Masks by construction: over every chat template in the matrix, short and awkward replies (single letters, digits,
role names, special-token text, whitespace at either end, words of the question or of an injected system prompt) train
exactly the reply and its end-of-turn marker, at the reply's place (hand-written)."""
import random, re
from functools import cache
import pytest
from lora_nb.data import TEMPLATES, prepare
from lora_nb.templates import SPECIAL, TemplateError, render, turn_end
from test_templates import ALL, MULTIMODAL, tokenizer_for

MISTRAL = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
           "{{ '[INST] ' + m['content'] + ' [/INST]' }}{% elif m['role'] == 'assistant' %}"
           "{{ m['content'] + eos_token }}{% endif %}{% endfor %}")
# Mistral v3: the system prompt goes into the last user turn (so earlier prefixes differ from the whole chat)
MISTRAL_V3 = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}"
              "{% set msgs = messages[1:] %}{% else %}{% set sys = '' %}{% set msgs = messages %}{% endif %}"
              "{% for m in msgs %}{% if m['role'] == 'user' %}{% if loop.last or loop.revindex == 2 and sys %}"
              "{{ '[INST] ' + sys + '\\n\\n' + m['content'] + '[/INST]' }}{% else %}{{ '[INST] ' + m['content'] + "
              "'[/INST]' }}{% endif %}{% else %}{{ ' ' + m['content'] | trim + eos_token }}{% endif %}{% endfor %}")
# SmolLM2-Instruct's: ChatML that injects its own system prompt when the chat has none
SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
           "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
           "<|im_end|>\\n' }}"
           "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
           "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
MATRIX = {**ALL, 'mistral': MISTRAL, 'mistral_v3': MISTRAL_V3, 'smollm2': SMOLLM2}

QUESTION = 'Which is prime? (a) 4 (b) 6 (c) 7 (d) 9'
SYSTEM = 'You are a helpful AI assistant named SmolLM, trained by Hugging Face'
NASTY = (list('adeT9') + ['end', 'assistant', 'user', 'system', 'model', 'INST', 'im', 'start', 'think', '<',
         '<|end|>', '<|im_end|>', '</s>', 'prime', '(d) 9', 'Which', 'You are', 'helpful', 'Hugging Face',
         'SmolLM', 'Cutting Knowledge Date', 'Qwen', 'Alibaba Cloud', 'd\n', 'd\t', 'd\r\n', ' d', '\nd', ' d ', '7.'])
POOL = [*'abcdexyzT', *'0123456789', 'end', 'assistant', 'user', 'system', 'INST', '</s>', '<|end|>', 'prime', 'You',
        'Hugging', 'Face', ' ', '\n', '\t', '\r\n', '.', '(c)', 'is']

def randoms(seed:int, n:int=12) -> list[str]:
    "`n` random short replies made of the pool's pieces (each with something besides whitespace)."
    rng, out = random.Random(seed), []
    while len(out) < n:
        r = ''.join(rng.choice(POOL) for _ in range(rng.randint(1, 3)))
        if r.strip(): out.append(r)
    return out

@cache
def tok_for(name:str):
    return tokenizer_for(MATRIX[name])

def words(s:str) -> str: return re.sub(r'\s+', '', s)

def trained_runs(ex) -> list[tuple[int, int]]:
    "The (first, last + 1) token positions of each run of trained tokens."
    runs, start = [], None
    for k, l in enumerate(ex.labels + [-100]):
        if l != -100 and start is None: start = k
        if l == -100 and start is not None: runs, start = runs + [(start, k)], None
    return runs

def check_example(name, tok, template, msgs, ex, marker):
    "The trained runs of `ex` are its replies plus the marker, each at its reply's place."
    text = render(tok, msgs, template)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc['input_ids'] == ex.input_ids, name
    offs, runs = enc['offset_mapping'], trained_runs(ex)
    at = [k for k, m in enumerate(msgs) if m['role'] == 'assistant']
    assert len(runs) == len(at), (name, [tok.decode(ex.input_ids[a:b]) for a, b in runs], msgs)
    for (a, b), k in zip(runs, at):
        head = render(tok, msgs[:k], template, add_generation_prompt=True)
        turn = render(tok, msgs[:k + 1], template)
        known = text.startswith(head) and text.startswith(turn)   # the template's prefixes hold: the place is known
        # a token holding the template's last characters and the reply's first ("]." after "[/INST") is trained whole
        pre = words(text[offs[a][0]:len(head)]) if known and offs[a][0] < len(head) else ''
        got, reply = words(tok.decode(ex.input_ids[a:b])), words(msgs[k]['content'])
        assert got.startswith(pre + reply), (name, repr(msgs[k]['content']), tok.decode(ex.input_ids[a:b]))
        rest = got[len(pre + reply):]
        assert rest == words(marker) if marker else (not rest or SPECIAL.fullmatch(rest)), (name, reply, got)
        if known:
            s, e = offs[a][0], offs[b - 1][1]
            assert s <= len(head) < offs[a][1] or s >= len(head), (name, reply, s, len(head))
            # with no common marker a reply takes the special token after it (GLM: the next turn's header)
            after = SPECIAL.match(text, len(turn)) if not marker else None
            assert e <= (after.end() if after else len(turn)), (name, reply, e, len(turn))

def chats(replies:list[str]) -> list[list[dict]]:
    "One exchange per reply, and two-reply chats with a system prompt whose words the replies repeat."
    one = [[{'role': 'user', 'content': QUESTION}, {'role': 'assistant', 'content': r}] for r in replies]
    two = [[{'role': 'system', 'content': SYSTEM}, {'role': 'user', 'content': 'Who are you? ' + r},
            {'role': 'assistant', 'content': r}, {'role': 'user', 'content': QUESTION},
            {'role': 'assistant', 'content': replies[-1 - k]}] for k, r in enumerate(replies)]
    return one + two

def run_matrix(name:str, replies:list[str]):
    tok, template = tok_for(name), MATRIX[name]
    if tok is None: pytest.skip(f"{name} renders only multimodal content")
    text = TEMPLATES.get(template, template)
    marker = turn_end(tok, text)
    for convs in (chats(replies)[:len(replies)], chats(replies)[len(replies):]):
        try: p = prepare([{'messages': m} for m in convs], tok, template=template, eval_size=0)
        except TemplateError as e:
            if name in MULTIMODAL: return
            assert 'refuses these messages' in e.what and convs[0][0]['role'] == 'system', (name, e.what)
            continue   # e.g. Gemma: no system role
        for ex in p.train: check_example(name, tok, text, convs[ex.index - 1], ex, marker)

@pytest.mark.parametrize('name', MATRIX)
def test_nasty_replies_train_exactly_themselves(name):
    run_matrix(name, NASTY)

@pytest.mark.parametrize('seed', [1, 2, 3])
@pytest.mark.parametrize('name', MATRIX)
def test_random_short_replies_train_exactly_themselves(name, seed):
    run_matrix(name, randoms(seed))

def test_the_reported_cases():
    "The issue's examples: a multiple-choice `d` with the embedded template, Mistral's `T`, a trailing newline."
    from lora_nb.settings import EMBEDDED_MODEL
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    for out in ['d', 'a', 'e', 'end', 'assistant', 'd\n', 'd\r\n', 'd\t']:
        p = prepare([{'instruction': QUESTION, 'output': out}], tok, eval_size=0)
        ex = p.train[0]
        assert tok.decode([i for i, l in zip(ex.input_ids, ex.labels) if l != -100]) == out + '<|end|>', out
    mt = tok_for('mistral')
    p = prepare([{'messages': [{'role': 'user', 'content': 'Pick a letter'}, {'role': 'assistant', 'content': 'T'}]}],
                mt, template=MISTRAL, eval_size=0)
    ex = p.train[0]
    assert words(mt.decode([i for i, l in zip(ex.input_ids, ex.labels) if l != -100])) == 'T' + words(mt.eos_token)
