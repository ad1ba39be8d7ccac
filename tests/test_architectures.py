"""The common architectures, each as a tiny random model: load in full precision, 8-bit and 4-bit, find the LoRA
targets, prepare chats, train padded and padding-free, compare, merge, and load the adapter with plain PEFT
(hand-written)."""
import math
from pathlib import Path
import pytest, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from lora_nb.models import EMBEDDED_MODEL, load_model, save_random_model, find_target_modules, all_targets
from lora_nb.data import prepare
from lora_nb.train import LoraSettings, Session, TrainSettings
from lora_nb.generation import compare, BASE
from lora_nb import adapters
from lora_nb.errors import QuantizationError
from lora_nb.memory import estimate

pytestmark = pytest.mark.slow
H, FF = 64, 128   # multiples of 32: bitsandbytes' CPU kernels need them (shared/DESIGN.md, hazard 2)
# no dropout anywhere, so padded and padding-free first losses can be compared exactly
ARCHS = {
    'llama': dict(model_type='llama'),
    'qwen2': dict(model_type='qwen2', hidden_size=H, intermediate_size=FF, num_attention_heads=2,
                  num_key_value_heads=1),
    'qwen3': dict(model_type='qwen3', hidden_size=H, intermediate_size=FF, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=32),
    'mistral': dict(model_type='mistral', hidden_size=H, intermediate_size=FF, num_attention_heads=2,
                    num_key_value_heads=1),
    'gemma': dict(model_type='gemma', hidden_size=H, intermediate_size=FF, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=32),
    'gemma2': dict(model_type='gemma2', hidden_size=H, intermediate_size=FF, num_attention_heads=2,
                   num_key_value_heads=1, head_dim=32),
    'gemma3_text': dict(model_type='gemma3_text', hidden_size=H, intermediate_size=FF, num_attention_heads=2,
                        num_key_value_heads=1, head_dim=32),
    'phi3': dict(model_type='phi3', hidden_size=H, intermediate_size=FF, num_attention_heads=2,
                 num_key_value_heads=2),
    'gpt_neox': dict(model_type='gpt_neox', hidden_size=H, intermediate_size=FF, num_attention_heads=2),
    'opt': dict(model_type='opt', hidden_size=H, ffn_dim=FF, num_attention_heads=2, word_embed_proj_dim=H, dropout=0.0,
                attention_dropout=0.0),
    'falcon': dict(model_type='falcon', hidden_size=H, num_attention_heads=2),
    'gpt2': dict(model_type='gpt2', n_embd=H, n_head=2, n_inner=FF, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
    'olmo2': dict(model_type='olmo2', hidden_size=H, intermediate_size=FF, num_attention_heads=2,
                  num_key_value_heads=1),
    'smollm3': dict(model_type='smollm3', hidden_size=H, intermediate_size=FF, num_attention_heads=2,
                    num_key_value_heads=1),
}
WORDS = ['loop', 'class', 'yield', 'raise']
RECORDS = [{'instruction': f'Reverse the word {w}.', 'output': w[::-1]} for w in WORDS * 4]

@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    common = dict(vocab_size=len(tok), num_hidden_layers=2, pad_token_id=tok.pad_token_id,
                  eos_token_id=tok.eos_token_id, bos_token_id=None)
    root = tmp_path_factory.mktemp('archs')
    return {a: save_random_model(root/a, **{**common, **cfg}) for a, cfg in ARCHS.items()}

@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('quantization', ['none', '8bit', '4bit'])
def test_loads_and_says_what_was_quantized(folders, arch, quantization):
    if arch == 'falcon' and quantization != 'none':   # FalconLinear is skipped by bitsandbytes: refused, not faked
        with pytest.raises(QuantizationError, match=r'quantized none of .*\(FalconLinear\)'):
            load_model(folders[arch], quantization=quantization)
        return
    assert estimate(folders[arch], quantization=quantization).total > 0   # GPT-2's Conv1D layers counted too
    lm = load_model(folders[arch], quantization=quantization)
    s = lm.summary
    if quantization == 'none': assert s.quantized_layers == 0
    else: assert s.quantized_layers > 0, f"{arch}: {quantization} quantized nothing, yet the summary says {s}"
    assert all_targets(find_target_modules(lm.model)), arch

def first_loss(run) -> float:
    return next(r['loss'] for r in run.read('metrics').records if 'loss' in r)

@pytest.mark.parametrize('arch', ARCHS)
def test_trains_compares_merges_and_round_trips(folders, arch, tmp_path):
    lm = load_model(folders[arch], quantization='none', dtype='float32')   # float32: compared to 1e-4 below
    data = prepare(RECORDS, lm.tokenizer, eval_size=0)
    runs = {}
    for pf in (False, True):
        s = Session(load_model(folders[arch], quantization='none', dtype='float32'), data, LoraSettings(r=4),
                    TrainSettings(max_steps=3, learning_rate=1e-3, padding_free=pf, save_steps=100), root=tmp_path)
        assert s.start(background=False).status == 'completed', (arch, s.error)
        runs[pf] = s
    padded, packed = first_loss(runs[False].run), first_loss(runs[True].run)
    assert math.isclose(padded, packed, rel_tol=1e-4), f"{arch}: first loss {padded} padded, {packed} padding-free"
    exact = arch != 'opt'   # OPT's attention ignores position_ids: packed examples would see each other (hazard 14)
    assert runs[True].run.info()['padding_free_used'] is exact, arch
    s = runs[True]
    cmp = compare(s.lm.model, s.lm.tokenizer, ['Reverse the word for.'], max_new_tokens=4)
    assert cmp.columns[0] == BASE and len(cmp.columns) == 2
    merged = adapters.merge(s.run.path, tmp_path/'merged', base=str(folders[arch]))
    assert (Path(merged)/'config.json').exists()
    # plain PEFT: the saved adapter on a fresh base gives the session's logits
    from peft import PeftModel
    base = AutoModelForCausalLM.from_pretrained(folders[arch])
    plain = PeftModel.from_pretrained(base, str(s.run.path/'adapter')).eval()
    ids = s.lm.tokenizer(['The "for" statement'], return_tensors='pt')
    s.lm.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(**ids).logits, s.lm.model(**ids).logits, rtol=1e-4, atol=1e-4)

@pytest.mark.parametrize('arch', ['llama', 'opt'])
def test_dora_trains_with_probes_and_compares(folders, arch, tmp_path):
    "PEFT refuses mixed batches with DoRA: probes and Compare answer one adapter at a time, with the same answers."
    lm = load_model(folders[arch], quantization='none')
    data = prepare(RECORDS, lm.tokenizer, eval_size=0)
    s = Session(lm, data, LoraSettings(r=4, use_dora=True), TrainSettings(max_steps=2, save_steps=100),
                probes=['Reverse the word for.'], root=tmp_path)
    assert s.start(background=False).status == 'completed', s.error
    assert len(s.run.read('samples').records) == 2
    model, tok = s.lm.model, s.lm.tokenizer
    prompts = ['Reverse the word for.', 'Reverse the word if.']
    both = compare(model, tok, prompts, max_new_tokens=6)
    alone = compare(model, tok, prompts, adapters=[], max_new_tokens=6)
    assert [o[BASE] for o in alone.outputs] == [o[BASE] for o in both.outputs] and both.columns == [BASE, 'default']

@pytest.mark.parametrize('arch', ARCHS)
def test_trains_in_bfloat16(folders, arch, tmp_path):
    "The CPU default where the CPU has it: bfloat16 weights, every plain LoRA linear layer trained in one pass."
    from peft.tuners.lora.layer import Linear as LoraLinear
    lm = load_model(folders[arch], quantization='none', dtype='bfloat16')
    s = Session(lm, prepare(RECORDS, lm.tokenizer, eval_size=0), LoraSettings(r=4),
                TrainSettings(max_steps=2, learning_rate=1e-3, save_steps=100), root=tmp_path)
    assert s.start(background=False).status == 'completed', (arch, s.error)
    losses = [r['loss'] for r in s.run.read('metrics').records if 'loss' in r]
    assert losses and all(math.isfinite(x) for x in losses), (arch, losses)
    plain = [m for m in s.lm.model.modules() if type(m) is LoraLinear and type(m.base_layer) is torch.nn.Linear]
    assert s.run.info()['one_pass_lora'] == len(plain), arch   # GPT-2's Conv1D layers keep PEFT's forward
