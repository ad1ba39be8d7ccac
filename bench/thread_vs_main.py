"""P1: training tokens/s of a `Session` in its background thread ÷ the same training on the main thread.

Each child process loads the embedded model on its main thread (as a notebook does), warms up, then trains the same
LoRA (r=16, padding-free, the same variable-length data, the same steps) alternately on the main thread and in the
background thread, twice each. tokens/s is the trainer's own token count over the training time.
Modes: `released` (as shipped: the main thread's idle OpenMP team is released before the training thread starts, see
`lora_nb.train.release_openmp_team`) and `kept` (LORA_NB_OMP_RELEASE=0, the naive background thread), side by side.
The machine is noisy: compare ratios within one run, and repeat.
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

CHILD = r'''
import os, sys, tempfile
if sys.argv[1] == 'kept': os.environ['LORA_NB_OMP_RELEASE'] = '0'
import lora_nb
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.train import LoraSettings, Session, TrainSettings
sys.path.insert(0, 'bench'); from harness import emit
import pydoc_data.topics as t
root = tempfile.mkdtemp()
texts = [v[:200 + 37 * (i % 9)] for i, v in enumerate(sorted(t.topics.values()))][:64]
def once(background):
    lm = load_model(quantization=sys.argv[2])
    data = prepare([{'text': x} for x in texts], lm.tokenizer, eval_size=0, max_length=256)
    train = TrainSettings(max_steps=16, per_device_train_batch_size=8, save_steps=1000)
    s = Session(lm, data, LoraSettings(r=16), train, root=root)
    s.start(background=background)
    if background: s.wait()
    return [r for r in s.run.read('metrics').records if 'tokens_per_s' in r][-1]['tokens_per_s']
once(False)
res = {'main': [], 'thread': []}
for order in (('main', 'thread'), ('thread', 'main')):
    for w in order: res[w].append(once(w == 'thread'))
emit(**res)
'''

def main(quantization='none'):
    out = {}
    for mode in ('released', 'kept'):
        r = measure(CHILD, mode, quantization)
        out[mode] = dict(tokens_per_s_main=round(max(r['main']), 1), tokens_per_s_thread=round(max(r['thread']), 1),
                         ratio_thread_over_main=ratio(max(r['thread']), max(r['main'])))
    emit(bench='thread_vs_main', quantization=quantization, **out, target='released ratio >= 0.95')

if __name__ == '__main__': main(*sys.argv[1:])
