"""The embedded base model: pretrained (not noise), a working chat template, 4-bit friendly, loads like a hub model
(hand-written)."""
import pydoc_data.topics
import torch, pytest
from transformers import AutoModelForCausalLM, AutoTokenizer
from lora_nb.models import EMBEDDED_MODEL, load_model, save_random_model

@pytest.fixture(scope='module')
def tok(): return AutoTokenizer.from_pretrained(EMBEDDED_MODEL)

def _loss(model, tok, text):
    ids = tok(text, return_tensors='pt')['input_ids'][:, :256]
    with torch.no_grad(): return model(input_ids=ids, labels=ids).loss.item()

def test_loads_with_plain_from_pretrained(tok):
    m = AutoModelForCausalLM.from_pretrained(EMBEDDED_MODEL)
    assert type(m).__name__ == 'LlamaForCausalLM' and m.config.use_cache
    assert tok.eos_token == '<|end|>' and tok.pad_token == '<|pad|>' and tok.pad_token_id != tok.eos_token_id

def test_it_is_pretrained_on_its_corpus(tok, tmp_path):
    "Loss on a training topic is far below a random-init twin's (about ln 4096 = 8.3)."
    text = pydoc_data.topics.topics['for']
    trained = load_model(quantization='none').model
    cfg = trained.config.to_dict()
    keep = ('hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads')
    rand = load_model(str(save_random_model(tmp_path, **{k: cfg[k] for k in keep})), quantization='none').model
    lt, lr = _loss(trained, tok, text), _loss(rand, tok, text)
    assert lr > 7.5 and lt < 4.0, (lt, lr)

def test_greedy_text_is_words_of_the_corpus(tok):
    lm = load_model(quantization='4bit')
    ids = tok('The "while" statement', return_tensors='pt')
    out = tok.decode(lm.model.generate(**ids, max_new_tokens=40, do_sample=False)[0], skip_special_tokens=True)
    vocab = set(w.strip('".,:;()*`\'').lower() for t in pydoc_data.topics.topics.values() for w in t.split())
    words = [w.strip('".,:;()*`\'').lower() for w in out.split()]
    words = [w for w in words if w.isalpha()]
    assert len(words) >= 15 and sum(w in vocab for w in words) / len(words) > 0.9, out

def test_chat_template_marks_assistant_tokens(tok):
    msgs = [{'role': 'user', 'content': 'Name a loop.'}, {'role': 'assistant', 'content': 'The for statement.'}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == '<|user|>\nName a loop.<|end|>\n<|assistant|>\nThe for statement.<|end|>\n'
    two = tok.apply_chat_template(msgs + msgs, tokenize=False)
    assert two == text + text                                  # turns stay on their own lines
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc['input_ids'], enc['assistant_masks']
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    assert trained == 'The for statement.<|end|>'
    assert tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True).endswith('<|assistant|>\n')

def test_loading_draws_no_progress_bar_in_the_cell(capfd):
    "transformers' weight-loading bar stays out of the cell (and is back on for the user's own loads afterwards)."
    from transformers.utils import logging as hf_logging
    load_model(quantization='none')
    err = capfd.readouterr().err
    assert 'Loading weights' not in err, err[-500:]
    assert hf_logging.is_progress_bar_enabled()
