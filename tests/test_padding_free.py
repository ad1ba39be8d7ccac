"""Padding-free batches (DataCollatorWithFlattening) give the padded batch's loss and gradients (shared/DESIGN.md,
hazard 4) (hand-written)."""
import torch
from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening
from peft import LoraConfig, get_peft_model
from lora_nb.models import load_model
from lora_nb.data import prepare

RECS = [{'instruction': 'Reverse the word ' + w + '.', 'output': w[::-1] + ' ' * (i % 3)}
        for i, w in enumerate(['loop', 'class', 'yield', 'raise', 'while', 'import', 'return', 'lambda'])]

def test_flattened_loss_and_grads_equal_padded():
    lm = load_model(quantization='none', dtype='float32')   # compared to 1e-4
    torch.manual_seed(0)
    model = get_peft_model(lm.model, LoraConfig(r=4, target_modules='all-linear', init_lora_weights=False))
    model.train()
    model.config.use_cache = False
    exs = prepare(RECS, lm.tokenizer, eval_size=0, seed=0).train
    feats = [{'input_ids': e.input_ids, 'labels': e.labels} for e in exs]
    assert len({len(f['input_ids']) for f in feats}) > 1                  # variable lengths: padding matters
    padded = DataCollatorForSeq2Seq(lm.tokenizer, padding=True, label_pad_token_id=-100, return_tensors='pt')(feats)
    flat = DataCollatorWithFlattening(return_position_ids=True)(feats)
    assert flat['input_ids'].shape[0] == 1 and 'attention_mask' not in flat
    def run(batch):
        model.zero_grad()
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    lp, gp = run(padded)
    lf, gf = run(flat)
    print(f"padded {lp:.7f} flattened {lf:.7f} delta {abs(lp - lf):.2e}")
    assert abs(lp - lf) < 1e-4, (lp, lf)
    worst = max(((gp[k] - gf[k]).norm() / gp[k].norm()).item() for k in gp)
    assert worst < 1e-3, worst
