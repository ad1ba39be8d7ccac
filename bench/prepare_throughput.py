"""Prepare at scale: `prepare` ÷ TRL SFTTrainer's own preprocessing of the same data, the same data prepared again,
and the memory one 50 MB record costs.

50,000 alpaca-sized chats (instructions from the shipped demo, answers of 100-500 characters cut from Python's own
help texts) on the embedded tokenizer with the real Qwen2.5 chat template (TRL's copy of the hub's) and its special
tokens. lora_nb trains each reply and its `<|im_end|>`; TRL (`assistant_only_loss`, with its patched training copy of
the template) also trains the newline before the reply and the one after `<|im_end|>`: the check below says the input
ids are identical and the trained tokens differ by exactly those newlines. Each side runs in a fresh process;
records/s = records ÷ the preprocessing's own time (for TRL, `SFTTrainer._prepare_dataset` on a `datasets.Dataset`
built beforehand, uncached). The 50 MB record's figure is peak RSS during `prepare` of a JSONL file holding it,
above the process's RSS before the call.
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

SETUP = r'''
import json, sys, time, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit, reset_peak, status
from pathlib import Path
import pydoc_data.topics as topics, trl
from transformers import AutoTokenizer
from lora_nb.settings import DEMO_DATA, EMBEDDED_MODEL
tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
tok.add_special_tokens({'additional_special_tokens': ['<|im_start|>', '<|im_end|>']})
tok.chat_template = (Path(trl.__file__).parent/'chat_templates'/'qwen2_5.jinja').read_text()
demo = [json.loads(l) for l in open(DEMO_DATA)]
help = ' '.join(sorted(topics.topics.values())).split()
def chat(i):
    d, k = demo[i % len(demo)], (i * 7919) % (len(help) - 100)
    answer = ' '.join(help[k:k + 15 + i % 70])
    return {'messages': [{'role': 'user', 'content': f"{d['instruction']} (case {i})"},
                         {'role': 'assistant', 'content': answer}]}
N = int(sys.argv[2])
records = [chat(i) for i in range(N)]
'''

LORA_NB = SETUP + r'''
from lora_nb.data import prepare
t = time.perf_counter(); p = prepare(records, tok, eval_size=0, max_length=1024); first = time.perf_counter() - t
t = time.perf_counter(); prepare(records, tok, eval_size=0, max_length=1024); again = time.perf_counter() - t
emit(seconds=first, again=again, records_per_s=N / first)
'''

TRL = SETUP + r'''
import datasets, tempfile
from trl import SFTConfig, SFTTrainer
from lora_nb.models import load_model
datasets.disable_caching(); datasets.disable_progress_bars()
model = load_model(quantization='none').model
cfg = SFTConfig(output_dir=tempfile.mkdtemp(), assistant_only_loss=True, max_length=1024, report_to='none',
                use_cpu=True, disable_tqdm=True)
tr = SFTTrainer(model=model, args=cfg, train_dataset=datasets.Dataset.from_list(records[:8]), processing_class=tok)
ds = datasets.Dataset.from_list(records)
t = time.perf_counter(); tr._prepare_dataset(ds, tok, cfg, False, None, 'train'); seconds = time.perf_counter() - t
emit(seconds=seconds, records_per_s=N / seconds)
'''

SAME = SETUP + r'''
import datasets, tempfile
from trl import SFTConfig, SFTTrainer
from lora_nb.data import prepare
from lora_nb.models import load_model
datasets.disable_caching(); datasets.disable_progress_bars()
cfg = SFTConfig(output_dir=tempfile.mkdtemp(), assistant_only_loss=True, max_length=1024, report_to='none',
                use_cpu=True, disable_tqdm=True)
tr = SFTTrainer(model=load_model(quantization='none').model, args=cfg,
                train_dataset=datasets.Dataset.from_list(records), processing_class=tok)
theirs = tr.train_dataset
ours = sorted(prepare(records, tok, eval_size=0).train, key=lambda e: e.index)
nl = set(tok('\n', add_special_tokens=False)['input_ids'])
same_ids = all(e.input_ids == list(t['input_ids']) for e, t in zip(ours, theirs))
def trained(labels): return {k for k, l in enumerate(labels) if l != -100}
extra = [trained(t['labels']) - trained(e.labels) for e, t in zip(ours, theirs)]
ours_in_theirs = all(trained(e.labels) <= trained(t['labels']) for e, t in zip(ours, theirs))
only_newlines = all(e.input_ids[k] in nl for e, x in zip(ours, extra) for k in x)
emit(same_input_ids=same_ids, ours_within_theirs=ours_in_theirs, difference_only_newlines=only_newlines,
     examples=len(ours))
'''

HUGE = r'''
import json, sys, tempfile, time, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, 'bench'); from harness import emit, reset_peak, status
from pathlib import Path
from transformers import AutoTokenizer
from lora_nb.data import prepare
from lora_nb.settings import EMBEDDED_MODEL
tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
f = Path(tempfile.mkdtemp())/'huge.jsonl'
f.write_text(json.dumps({'instruction': 'Summarise this.', 'output': 'Lorem ipsum dolor sit amet. ' * 1_800_000}) + '\n'
             + json.dumps({'instruction': 'Say hi.', 'output': 'Hi.'}) + '\n')
prepare([{'text': 'warm up'}], tok, eval_size=0)
before = status('VmRSS'); reset_peak()
t = time.perf_counter(); p = prepare(str(f), tok, eval_size=0, max_length=1024); seconds = time.perf_counter() - t
emit(file_mb=round(f.stat().st_size / 2**20, 1), seconds=round(seconds, 2),
     peak_mb_above_start=round((status('VmHWM') - before) / 2**20), tokens_kept=len(p.train[0].input_ids),
     truncated=p.train[0].truncated)
'''

def main(n:int=50_000):
    ours, theirs = measure(LORA_NB, 'x', n), measure(TRL, 'x', n)
    emit(bench='prepare_throughput', records=n, template='qwen2_5 (hub, via TRL)',
         records_per_s={'lora_nb': round(ours['records_per_s']), 'trl_sft': round(theirs['records_per_s'])},
         seconds={'lora_nb': round(ours['seconds'], 2), 'trl_sft': round(theirs['seconds'], 2)},
         ratio_lora_nb_over_trl=ratio(ours['records_per_s'], theirs['records_per_s']),
         again_share_of_first=ratio(ours['again'], ours['seconds'], 4), labels=measure(SAME, 'x', 500),
         record_50mb=measure(HUGE), target='ratio >= 1.0; again <= 0.05; 50 MB record peak <= 500 MB')

if __name__ == '__main__': main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
