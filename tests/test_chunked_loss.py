"""The training loss by chunks of tokens (lora_nb.speed.use_chunked_loss): the same loss and gradients as the model's
own loss over the whole logits, on padded and packed batches with masked labels, for the heads it meets, and never a
[tokens × vocabulary] tensor (hand-written)."""
import json, math
import pytest, torch
from peft import LoraConfig, get_peft_model
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import DataCollatorWithFlattening
from lora_nb import speed
from lora_nb.models import load_model, save_random_model
from lora_nb.speed import use_chunked_loss, use_one_pass_lora

VOCAB = 1000   # the random model's: not a multiple of the chunk

@pytest.fixture(scope='module')
def random_folder(tmp_path_factory):
    "A random Qwen2-shaped model (q/k/v bias, untied head) with a small vocabulary."
    return save_random_model(tmp_path_factory.mktemp('qwen'), model_type='qwen2', hidden_size=64,
                             intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             vocab_size=VOCAB, tie_word_embeddings=False, pad_token_id=0, eos_token_id=2)

def _model(folder, dtype='float32', targets='all-linear'):
    torch.manual_seed(0)
    base = load_model(None if folder is None else str(folder), quantization='none', dtype=dtype).model
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=targets, init_lora_weights=False, lora_dropout=0.0)
    return get_peft_model(base, cfg).train()

def _padded(vocab:int):
    "Three rows, right-padded, with the prompt of one and the padding of another masked (-100)."
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (3, 19), generator=g)
    am = torch.ones_like(ids)
    am[1, 11:] = am[2, 15:] = 0
    labels = ids.masked_fill(am == 0, -100)
    labels[0, :7] = -100
    return dict(input_ids=ids, attention_mask=am, labels=labels)

def _packed(vocab:int):
    "The same three examples as one packed row (the collator masks each example's first label)."
    b = _padded(vocab)
    rows = [{'input_ids': i[m.bool()].tolist(), 'labels': l[m.bool()].tolist()}
            for i, m, l in zip(b['input_ids'], b['attention_mask'], b['labels'])]
    return DataCollatorWithFlattening(return_position_ids=True)(rows)

def _loss_grads(m, batch, **kw):
    out = m(**batch, use_cache=False, **kw)
    out.loss.backward()
    g = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad(set_to_none=True)
    return out.loss.detach(), g

def _rel(g, h) -> float:
    assert g.keys() == h.keys() and g
    return max(((g[k] - h[k]).norm() / g[k].norm()).item() for k in g)

@pytest.mark.parametrize('which', ['embedded', 'random'])
@pytest.mark.parametrize('layout', ['padded', 'packed'])
@pytest.mark.parametrize('count', [None, 50])   # the model's mean, or the trainer's token count over accumulation
def test_same_loss_and_lora_gradients_as_the_whole_logits(which, layout, count, random_folder):
    m = _model(None if which == 'embedded' else random_folder)
    vocab = m.config.vocab_size
    batch = (_padded if layout == 'padded' else _packed)(min(vocab, 4000))
    kw = {} if count is None else {'num_items_in_batch': torch.tensor(count)}
    l0, g0 = _loss_grads(m, batch, **kw)
    assert use_chunked_loss(m, rows=7) == 7   # chunks of 7 positions: the last one shorter
    l1, g1 = _loss_grads(m, batch, **kw)
    assert torch.allclose(l0, l1, rtol=1e-5), (l0, l1)
    assert _rel(g0, g1) < 1e-5
    assert use_chunked_loss(m, on=False) == 7 and 'forward' not in m.get_base_model().__dict__

def test_bfloat16_within_its_rounding_and_with_the_one_pass_lora(random_folder):
    m = _model(random_folder, 'bfloat16')
    use_one_pass_lora(m)
    batch = _packed(VOCAB)
    l0, g0 = _loss_grads(m, batch)
    use_chunked_loss(m, rows=5)
    l1, g1 = _loss_grads(m, batch)
    assert abs(l0 - l1) < 1e-3 * abs(l0) and _rel(g0, g1) < 0.05

def test_a_lora_on_the_head_runs_chunk_by_chunk_under_checkpointing(random_folder):
    m = _model(random_folder, targets=['q_proj', 'v_proj', 'lm_head'])
    assert type(m.get_base_model().get_output_embeddings()).__name__ == 'Linear'   # PEFT's LoRA layer
    batch = _padded(VOCAB)
    l0, g0 = _loss_grads(m, batch)
    use_chunked_loss(m, rows=6)
    l1, g1 = _loss_grads(m, batch)
    assert any('lm_head' in k for k in g1)
    assert torch.allclose(l0, l1, rtol=1e-5) and _rel(g0, g1) < 1e-5

def test_a_trained_head_with_a_bias_gets_its_gradients(random_folder):
    m = load_model(str(random_folder), quantization='none', dtype='float32').model.train()
    head = m.get_output_embeddings()
    head.bias = torch.nn.Parameter(torch.randn(VOCAB) * 0.1)
    for p in m.parameters(): p.requires_grad_(False)
    head.weight.requires_grad_(True)
    head.bias.requires_grad_(True)
    m.model.embed_tokens.weight.requires_grad_(True)   # the hidden states' gradient is used too
    batch = _padded(VOCAB)
    l0, g0 = _loss_grads(m, batch)
    use_chunked_loss(m, rows=8)
    l1, g1 = _loss_grads(m, batch)
    assert set(g1) == {'lm_head.weight', 'lm_head.bias', 'model.embed_tokens.weight'}
    assert torch.allclose(l0, l1, rtol=1e-5) and _rel(g0, g1) < 1e-5

def test_no_labels_no_grad_and_nothing_labelled(random_folder):
    m = _model(random_folder)
    batch = _padded(VOCAB)
    with torch.no_grad(): want = m(**batch, use_cache=False)
    use_chunked_loss(m, rows=4)
    with torch.no_grad():
        got = m(**batch, use_cache=False)   # an evaluation: the loss alone
        plain = m(input_ids=batch['input_ids'], attention_mask=batch['attention_mask'], use_cache=False)
    assert got.logits is None and torch.allclose(got.loss, want.loss, rtol=1e-5)
    assert torch.allclose(plain.logits, want.logits, atol=1e-6)   # no labels: the model's own forward
    none = dict(batch, labels=torch.full_like(batch['labels'], -100))
    assert math.isnan(m(**none, use_cache=False).loss.item())    # as the model's own mean over no token
    assert m(**none, num_items_in_batch=torch.tensor(9), use_cache=False).loss.item() == 0

def test_left_alone_where_it_would_change_the_loss_or_gain_nothing(random_folder):
    m = _model(random_folder)
    assert use_chunked_loss(m, tokens=8 * 150) == 0   # 1,000 entries × 1,200 tokens: small logits
    m.get_base_model().config.final_logit_softcapping = 30.0
    assert use_chunked_loss(m) == 0                     # a head that caps its logits keeps its own loss
    body = load_model(str(random_folder), quantization='none').model.model
    assert use_chunked_loss(body) == 0                  # no head at all
    assert speed.loss_chunking_pays(151_936, 8 * 150) and speed.loss_chunk_tokens(151_936) == 110

class _Biggest(TorchDispatchMode):
    "The largest new tensor (not a view) any operation makes, in elements."
    def __init__(self):
        super().__init__()
        self.most = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        seen = {x.untyped_storage().data_ptr() for x in torch.utils._pytree.tree_leaves((args, kwargs))
                if isinstance(x, torch.Tensor)}
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:   # new, not a view
                self.most = max(self.most, t.numel())
        return out

def test_no_tensor_of_all_positions_by_the_vocabulary(random_folder):
    m = _model(random_folder)
    batch = _padded(VOCAB)
    n = batch['input_ids'].numel()
    def biggest():
        with _Biggest() as b: _loss_grads(m, batch)
        return b.most
    assert biggest() >= n * VOCAB   # the model's own loss: the whole logits
    use_chunked_loss(m, rows=8)
    assert biggest() <= 8 * VOCAB   # a chunk's logits at most (a layer's weights are smaller here)

def test_a_session_chunks_large_logits_records_it_and_trains_the_same(data, tmp_path, monkeypatch):
    from lora_nb.train import LoraSettings, Session, TrainSettings
    from lora_nb.models import load_model as load
    train = TrainSettings(max_steps=3, per_device_train_batch_size=4, save_steps=100, warmup_steps=0)
    def run(budget):
        monkeypatch.setattr(speed, 'LOSS_CHUNK_BYTES', budget)
        s = Session(load(quantization='none'), data, LoraSettings(r=4, lora_dropout=0.0), train, root=tmp_path)
        s.start(background=False)
        assert s.status == 'completed', (s.error, s.hint)
        inner = s.lm.model.get_base_model()
        assert 'forward' not in inner.__dict__ and '_lora_nb_loss' not in inner.__dict__   # undone at the end
        info = json.loads((s.run.path/'run.json').read_text())
        losses = [r['loss'] for r in s.run.read('metrics').records if 'loss' in r]
        evals = [r['eval_loss'] for r in s.run.read('metrics').records if 'eval_loss' in r]
        return info['loss_chunk_tokens'], losses, evals
    plain = run(2**30)                       # a step's logits are small next to a GiB: the model's own loss
    chunked = run(16 * 4 * 4096)             # chunks of 16 tokens of the 4,096-entry vocabulary
    assert plain[0] == 0 and chunked[0] == 16
    assert len(chunked[1]) == 3 and chunked[2]
    assert abs(plain[1][0] - chunked[1][0]) < 1e-6 * plain[1][0]   # the same first loss
    # then the same run, within bfloat16's rounding of the gradients (the embedded model loads in bfloat16 here)
    for a, b in zip(plain[1] + plain[2], chunked[1] + chunked[2]): assert abs(a - b) < 1e-3 * abs(a)

@pytest.fixture(scope='module')
def arch_folders(tmp_path_factory):
    from test_architectures import ARCHS
    tok = load_model(quantization='none').tokenizer
    common = dict(vocab_size=len(tok), num_hidden_layers=2, pad_token_id=tok.pad_token_id,
                  eos_token_id=tok.eos_token_id, bos_token_id=None)
    root = tmp_path_factory.mktemp('archs')
    return {a: save_random_model(root/a, **{**common, **cfg}) for a, cfg in ARCHS.items()}

CAPPED = {'gemma2'}   # final_logit_softcapping: the model's own loss

@pytest.mark.slow
def test_every_common_architecture_the_same_or_left_alone(arch_folders):
    for arch, folder in arch_folders.items():
        m = _model(folder)
        batch = _padded(4000)
        l0, g0 = _loss_grads(m, batch)
        rows = use_chunked_loss(m, rows=7)
        assert (rows == 0) == (arch in CAPPED), arch
        l1, g1 = _loss_grads(m, batch)
        assert torch.allclose(l0, l1, rtol=1e-5) and _rel(g0, g1) < 1e-5, arch
