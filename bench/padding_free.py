"""P3: padding-free loss ÷ padded loss on the same examples (fp32), and what padding-free buys in a Session.

Part 1: the LoRA model (random non-zero adapter) on 8 batches of 8 variable-length demo examples, each batch once
padded (DataCollatorForSeq2Seq) and once flattened (DataCollatorWithFlattening, position ids, no KV cache): the
largest |Δloss| and the loss ratio. Part 2: the same 16-step Session with `padding_free` on and off, in fresh
processes: training seconds per step (hand-written).
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

LOSS = r'''
import sys, torch
from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening
from peft import LoraConfig, get_peft_model
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.demo import load_demo_data
sys.path.insert(0, 'bench'); from harness import emit
lm = load_model(quantization='none'); torch.manual_seed(0)
model = get_peft_model(lm.model, LoraConfig(r=16, target_modules='all-linear', init_lora_weights=False)).eval()
model.config.use_cache = False
exs = prepare(load_demo_data()[0], lm.tokenizer, eval_size=0).train
pad = DataCollatorForSeq2Seq(lm.tokenizer, padding=True, label_pad_token_id=-100, return_tensors='pt')
flat = DataCollatorWithFlattening(return_position_ids=True)
deltas, ratios, pad_frac = [], [], []
with torch.no_grad():
    for b in range(8):
        feats = [{'input_ids': e.input_ids, 'labels': e.labels} for e in exs[b * 8:(b + 1) * 8]]
        p, f = pad(feats), flat(feats)
        lp, lf = model(**p, use_cache=False).loss.item(), model(**f, use_cache=False).loss.item()
        deltas.append(abs(lp - lf))
        ratios.append(lf / lp)
        pad_frac.append(1 - f['input_ids'].numel() / p['input_ids'].numel())
emit(max_abs_delta=max(deltas), ratio_min=min(ratios), ratio_max=max(ratios),
     padding_share=sum(pad_frac) / len(pad_frac))
'''

SPEED = r'''
import sys, time, tempfile
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.demo import load_demo_data
from lora_nb.train import LoraSettings, Session, TrainSettings
sys.path.insert(0, 'bench'); from harness import emit
lm = load_model(quantization='none')
data = prepare(load_demo_data()[0], lm.tokenizer, eval_size=0)
train = TrainSettings(max_steps=16, per_device_train_batch_size=8, padding_free=sys.argv[1] == 'on', save_steps=1000)
s = Session(lm, data, LoraSettings(r=16), train, root=tempfile.mkdtemp())
t = time.perf_counter(); s.start(background=False)
losses = [r['loss'] for r in s.run.read('metrics').records if 'loss' in r]
emit(seconds_per_step=(time.perf_counter() - t) / 16, final_loss=losses[-1])
'''

def main():
    loss = measure(LOSS)
    on, off = measure(SPEED, 'on'), measure(SPEED, 'off')
    emit(bench='padding_free', max_abs_delta_loss=float(f"{loss['max_abs_delta']:.2e}"),
         loss_ratio_range=[round(loss['ratio_min'], 7), round(loss['ratio_max'], 7)],
         padding_share_of_padded_batch=round(loss['padding_share'], 3),
         seconds_per_step_padding_free=round(on['seconds_per_step'], 3),
         seconds_per_step_padded=round(off['seconds_per_step'], 3),
         step_time_ratio_free_over_padded=ratio(on['seconds_per_step'], off['seconds_per_step']),
         final_loss_free=round(on['final_loss'], 4), final_loss_padded=round(off['final_loss'], 4),
         target='|delta| < 1e-4')

if __name__ == '__main__': main()
