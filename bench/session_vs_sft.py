"""P2: a `Session` ÷ plain TRL `SFTTrainer` with its default settings: non-pad tokens/s and final loss.

Same model (the embedded base, fp32 on the CPU), same LoRA (r=16, all linear layers), same 64 variable-length
examples, one epoch at batch 8, each in a fresh process. Both consume every example once, so the non-pad token
count is the same; tokens/s = that count ÷ the trainer's own `train_runtime`.

TRL's defaults turn on bf16 autocast and gradient checkpointing; bf16 is emulated on CPUs without AVX512-BF16,
which dominates here. `sft_fp32` (bf16 and gradient checkpointing off, still padded batches) isolates what
padding-free batching and the rest of the Session add.
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

CHILD = r'''
import sys, tempfile, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit
import pydoc_data.topics as t
from lora_nb.models import load_model
texts = [v[:150 + 61 * (i % 11)] for i, v in enumerate(sorted(t.topics.values()))][:64]
lm = load_model(quantization='none')
if sys.argv[1] == 'session':
    from lora_nb.data import prepare
    from lora_nb.train import LoraSettings, Session, TrainSettings
    data = prepare([{'text': x} for x in texts], lm.tokenizer, eval_size=0, max_length=512)
    train = TrainSettings(num_train_epochs=1, per_device_train_batch_size=8, warmup_steps=0, save_steps=1000)
    s = Session(lm, data, LoraSettings(r=16, lora_dropout=0.0), train, root=tempfile.mkdtemp())
    s.start(background=False)
    recs = s.run.read('metrics').records
    runtime = [r for r in recs if 'train_runtime' in r][-1]['train_runtime']
    loss = [r['loss'] for r in recs if 'loss' in r][-1]
    tokens = sum(len(e.input_ids) for e in data.train)
else:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer
    ds = Dataset.from_list([{'text': x} for x in texts])
    cfg = SFTConfig(output_dir=tempfile.mkdtemp(), num_train_epochs=1, per_device_train_batch_size=8, max_length=512,
                    learning_rate=2e-4, lr_scheduler_type='cosine', logging_steps=1, save_strategy='no',
                    report_to='none', disable_tqdm=True, use_cpu=True,
                    **(dict(bf16=False, gradient_checkpointing=False) if sys.argv[1] == 'sft_fp32' else {}))
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules='all-linear', task_type='CAUSAL_LM')
    tr = SFTTrainer(model=lm.model, args=cfg, train_dataset=ds, processing_class=lm.tokenizer, peft_config=lora)
    out = tr.train()
    runtime = out.metrics['train_runtime']
    loss = [h['loss'] for h in tr.state.log_history if 'loss' in h][-1]
    tokens = sum(len(x) for x in tr.train_dataset['input_ids'])
emit(tokens=tokens, runtime=runtime, tokens_per_s=tokens / runtime, final_loss=loss)
'''

def main():
    res = {m: [measure(CHILD, m) for _ in range(n)] for m, n in (('sft', 1), ('sft_fp32', 2), ('session', 2))}
    best = {m: max(rs, key=lambda r: r['tokens_per_s']) for m, rs in res.items()}
    emit(bench='session_vs_sft', tokens={m: b['tokens'] for m, b in best.items()},
         tokens_per_s={m: round(b['tokens_per_s'], 1) for m, b in best.items()},
         ratio_session_over_sft_default=ratio(best['session']['tokens_per_s'], best['sft']['tokens_per_s']),
         ratio_session_over_sft_fp32=ratio(best['session']['tokens_per_s'], best['sft_fp32']['tokens_per_s']),
         final_loss={m: [round(r['final_loss'], 4) for r in rs] for m, rs in res.items()},
         target='ratio >= 1.3, final loss within noise')

if __name__ == '__main__': main()
