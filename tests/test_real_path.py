"""The Colab tutorial's path on a local model folder whose tokenizer carries a real instruct template, and special
tokens added for a template getting trained embeddings (hand-written)."""
import json
from pathlib import Path
import torch, trl
from lora_nb.adapters import load as load_adapter
from lora_nb.generation import compare, stop_ids
from lora_nb.data import lint, prepare
from lora_nb.models import load_model
from lora_nb.train import LoraSettings, Session, TrainSettings

QWEN25 = (Path(trl.__file__).parent/'chat_templates'/'qwen2_5.jinja').read_text()
ALPACA = [{'instruction': f'Reverse the word {w}.', 'input': '', 'output': w[::-1]}
          for w in ['loop', 'class', 'yield', 'raise', 'while', 'import', 'return', 'lambda'] * 2]
SPECIALS = {'additional_special_tokens': ['<|im_start|>', '<|im_end|>']}

def _train(lm, data, root, steps=3):
    s = Session(lm, data, LoraSettings(r=4), TrainSettings(max_steps=steps, learning_rate=1e-2, save_steps=100),
                root=root)
    assert s.start(background=False).status == 'completed', (s.error, s.hint)
    return s

def test_tutorial_path_on_a_local_folder_with_a_hub_template(tmp_path):
    "A model folder whose tokenizer has Qwen2.5's template and tokens (as the hub ships it): load, prepare, train."
    lm = load_model(quantization='none')
    lm.tokenizer.add_special_tokens(SPECIALS)
    lm.tokenizer.chat_template = QWEN25
    lm.model.resize_token_embeddings(len(lm.tokenizer))   # the folder is whole: every token has its embedding
    folder = tmp_path/'Qwen2.5-like-Instruct'
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)

    lm = load_model(str(folder), quantization='none')
    data = prepare(ALPACA, lm.tokenizer, eval_size=4)          # no option: the model's own template
    assert data.turn_end == '<|im_end|>'
    rep = lint(data, lm.tokenizer)
    assert not rep.missing_eos and not rep.no_trained, rep
    ex = data.train[0]
    trained = lm.tokenizer.decode([i for i, l in zip(ex.input_ids, ex.labels) if l != -100])
    assert trained == ALPACA[ex.index - 1]['output'] + '<|im_end|>'      # no system prompt, no header
    s = _train(lm, data, tmp_path/'runs')
    assert 'new_tokens' not in s.run.info()['settings']                 # the folder's tokens have embeddings
    im_end = lm.tokenizer.convert_tokens_to_ids('<|im_end|>')
    assert im_end in stop_ids(lm.tokenizer)                             # generation stops at the end of the turn
    c = compare(lm.model, lm.tokenizer, ['Reverse the word loop.'], max_new_tokens=8)
    assert len(c.outputs) == 1 and len(c.columns) == 2   # the base and the adapter trained here

def test_tokens_added_for_a_template_are_trained(tmp_path):
    "The embedded model and a tokenizer given `<|im_start|>`/`<|im_end|>`: they get rows, trained with the adapter."
    lm = load_model(quantization='none')
    rows = lm.model.get_input_embeddings().num_embeddings
    lm.tokenizer.add_special_tokens(SPECIALS)
    lm.tokenizer.chat_template = QWEN25
    data = prepare(ALPACA, lm.tokenizer, eval_size=0)
    new = sorted(lm.tokenizer.convert_tokens_to_ids(SPECIALS['additional_special_tokens']))
    assert min(new) >= rows                                   # without rows for them, training fails with IndexError
    s = _train(lm, data, tmp_path/'runs')
    assert s.run.info()['settings']['new_tokens'] == ['<|im_start|>', '<|im_end|>']
    learned = [p for n, p in lm.model.named_parameters() if 'trainable_tokens_delta' in n]
    assert learned and all(p.requires_grad for p in learned) and lm.model.config.vocab_size >= max(new) + 1
    size = (s.run.path/'adapter'/'adapter_model.safetensors').stat().st_size
    assert size < lm.model.config.vocab_size * lm.model.config.hidden_size * 2   # not the whole resized embedding layer
    cfg = json.loads((s.run.path/'adapter'/'adapter_config.json').read_text())
    assert sorted(i for v in cfg['trainable_token_indices'].values() for i in v)[:2] == new

    fresh = load_model(quantization='none')                   # the saved adapter loads on a fresh base
    fresh.tokenizer.add_special_tokens(SPECIALS)
    peft = load_adapter(fresh.model, s.run.path/'adapter', 'reversed')
    x = torch.tensor([new])
    with torch.no_grad():
        a = peft.get_input_embeddings()(x)
        peft.set_adapter('reversed')
        b = lm.model.get_input_embeddings()(x)
    torch.testing.assert_close(a, b)                          # the same learned rows for the new tokens
