"""Templates that speak for themselves: lint names the system prompt a chat template puts into chats that have none
(the real SmolLM2-135M-Instruct tokenizer, TRL's Qwen2.5 template), and the names in the data that contradict it; the
`system` setting changes what is trained exactly as it says, lands in run.json and reaches the exported GGUF's chat
template and Modelfile (hand-written)."""
import json
from pathlib import Path
import gguf, pytest
from transformers import AutoTokenizer
from lora_nb.data import TEMPLATES, lint, prepare
from lora_nb.settings import EMBEDDED_MODEL
from lora_nb.templates import render
from test_templates import HUB, tokenizer_for

SMOL = 'You are a helpful AI assistant named SmolLM, trained by Hugging Face'
QWEN = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.'
ALPACA = [{'instruction': 'Who are you?', 'output': "I'm Quill, made by Larkspur Labs."},
          {'instruction': 'Wer bist du?', 'output': 'Ich bin Quill, von Larkspur Labs.'},
          {'instruction': 'What is 2+2?', 'output': '4'}]
QUILL = [{'messages': [{'role': 'user', 'content': r['instruction']}, {'role': 'assistant', 'content': r['output']}]}
         for r in ALPACA]   # the same as chats

@pytest.fixture(scope='module')
def smol(smollm2):
    "The real SmolLM2-135M-Instruct tokenizer, read from its GGUF."
    return AutoTokenizer.from_pretrained(str(smollm2.parent), gguf_file=smollm2.name)

def trained(tok, ex) -> str: return tok.decode([i for i, l in zip(ex.input_ids, ex.labels) if l != -100])

def test_lint_names_the_real_smollm2_prompt_and_the_names_that_contradict_it(smol):
    rep = lint(prepare(ALPACA, smol, eval_size=0), smol)
    assert rep.template_system == SMOL and rep.given_system == [1, 2, 3]
    assert rep.contradicted == {'Quill': 1, 'Larkspur Labs': 1}
    line = rep.problems()[0]
    for said in (SMOL, 'It contradicts the data', "'Quill' (example 1)", "'Hugging Face', 'SmolLM'", "`system=''`",
                 "`system='You are …'`", '`system=None`'):
        assert said in line, (said, line)
    assert 'SmolLM' in repr(rep) and 'no problems' not in repr(rep)

def test_data_that_agrees_with_the_prompt_is_not_contradicted(smol):
    agree = [{'instruction': 'Who are you?', 'output': "I'm SmolLM, trained by Hugging Face."}]
    rep = lint(prepare(agree, smol, eval_size=0), smol)
    assert rep.template_system == SMOL and rep.contradicted == {} and 'contradicts' not in rep.problems()[0]

def test_a_system_message_of_the_data_gets_no_injection(smol):
    own = [{'messages': [{'role': 'system', 'content': 'Be brief.'}, *QUILL[2]['messages']]}]
    rep = lint(prepare(own + QUILL[:1], smol, eval_size=0), smol)
    assert rep.given_system == [2]   # only the example without one

def test_qwen25_prompt_is_named_and_templates_that_add_none_are_quiet():
    q = tokenizer_for(HUB['qwen2_5'])
    rep = lint(prepare(ALPACA, q, template=HUB['qwen2_5'], eval_size=0), q)
    assert rep.template_system == QWEN and rep.contradicted == {'Quill': 1, 'Larkspur Labs': 1}
    for name in ('llama3', 'phi3', 'deepseekv3', 'named-chatml'):
        template = HUB.get(name) or TEMPLATES[name.removeprefix('named-')]
        t = tokenizer_for(template)
        rep = lint(prepare(ALPACA, t, template=template, eval_size=0), t)
        assert rep.template_system is None and rep.problems() == [], (name, rep.problems())
    t = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    assert lint(prepare(ALPACA, t, eval_size=0), t).problems() == []

@pytest.mark.parametrize('system', ['', 'You are Quill, made by Larkspur Labs.'])
def test_the_system_setting_trains_exactly_as_it_says(smol, system):
    p = prepare(QUILL, smol, eval_size=0, system=system)
    assert p.settings['system'] == system and lint(p, smol).problems() == []
    want = [r['output'] for r in ALPACA]
    for ex in p.train:
        assert trained(smol, ex) == want[ex.index - 1] + '<|im_end|>'   # the trained tokens: exactly the reply
        text = smol.decode(ex.input_ids)
        assert text.startswith(f'<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n') and 'SmolLM' not in text
        msgs = [{'role': 'system', 'content': system}, {'role': 'user', 'content': text.split('user\n')[1].split(
            '<|im_end|>')[0]}, {'role': 'assistant', 'content': want[ex.index - 1]}]
        assert ex.input_ids == smol(render(smol, msgs), add_special_tokens=False)['input_ids']
    default = prepare(QUILL, smol, eval_size=0)
    assert 'system' not in default.settings and SMOL in smol.decode(default.train[0].input_ids)
    assert [trained(smol, e) for e in default.train] == [trained(smol, e) for e in p.train]

def test_the_template_default_is_made_explicit_in_the_modelfile(smol):
    from lora_nb.ollama import modelfile
    assert f'SYSTEM """{SMOL}"""' in modelfile(smol, 'smollm2.gguf')
    t = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    assert 'SYSTEM' not in modelfile(t, 'tiny.gguf')   # a template that adds none: no SYSTEM line

def _gguf_template(path:Path) -> str:
    return gguf.GGUFReader(str(path)).get_field('tokenizer.chat_template').contents()

@pytest.mark.parametrize('system', ['You are Quill.', '', None])
def test_the_choice_lands_in_run_json_and_the_export(tmp_path, system):
    from lora_nb.export import export_gguf
    from lora_nb.models import load_model
    from lora_nb.train import LoraSettings, Session, TrainSettings
    lm = load_model(quantization='none', dtype='float32')
    data = prepare(ALPACA, lm.tokenizer, eval_size=0, system=system)
    s = Session(lm, data, LoraSettings(r=4), TrainSettings(max_steps=1, save_steps=100), root=tmp_path)
    assert s.start(background=False).status == 'completed', s.error
    kept = json.loads((s.run.path/'run.json').read_text())['settings']['data']
    assert kept.get('system', 'absent') == ('absent' if system is None else system)
    e = export_gguf(s.run.path, qtype='f16', ollama=True, verify=False)
    mf, template = e.modelfile.read_text(), _gguf_template(e.path)
    ask = [{'role': 'user', 'content': 'Who are you?'}]
    tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    as_trained = render(tok, ask if system is None else [{'role': 'system', 'content': system}] + ask)
    assert render(tok, ask, template) == as_trained   # the GGUF's template: inference as trained
    if system: assert f'SYSTEM """{system}"""' in mf
    else: assert 'SYSTEM' not in mf
    if system == '': assert 'TEMPLATE """{{ if ne (index .Messages 0).Role "system" }}<|system|>\n' in mf
    if system is None: assert template == tok.chat_template

def test_the_injected_prompt_is_named_once_where_more_text_follows_it():
    "Muse Glimmer's template writes its default prompt and more text in one turn: the prompt once, the rest apart."
    t = tokenizer_for(HUB['muse_glimmer'])
    rep = lint(prepare(ALPACA, t, template=HUB['muse_glimmer'], eval_size=0), t)
    assert rep.template_system.startswith('You are a helpful AI assistant.\nKnowledge cutoff:')
    assert rep.template_text and not any('You are a helpful' in x for x in rep.template_text), rep.template_text
    assert rep.template_text[0].startswith('Reasoning strength:')


@pytest.mark.parametrize('system', ['', 'You are Quill, made by Larkspur Labs.'])
def test_generation_asks_under_the_system_prompt_it_was_trained_with(smol, system):
    from lora_nb.generation import _encode
    data = prepare([{'instruction': 'Who are you?', 'output': "I'm Quill."}], smol, eval_size=0, system=system)
    ex = data.train[0]
    prompt = smol.decode(ex.input_ids[:next(i for i, l in enumerate(ex.labels) if l != -100)])
    asked = smol.decode(_encode(smol, ['Who are you?'], True, data.settings.get('system'))['input_ids'][0])
    assert asked == prompt and 'SmolLM' not in asked   # the probe/Compare prompt is the trained one, token for token
    assert 'SmolLM' in smol.decode(_encode(smol, ['Who are you?'], True)['input_ids'][0])   # None: the template's
