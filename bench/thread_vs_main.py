"""P1: training tokens/s of a `Session` in its background thread ÷ the same training on the main thread.

Both runs are in one process, in both orders, after the model was loaded on the main thread (as in a notebook).
Each trains the embedded model (LoRA r=16, padding-free) on the same variable-length data for the same steps;
tokens/s comes from the trainer's own token count over the training time.
"""
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, ratio

def run_once(background, quantization, root):
    from lora_nb.models import load_model
    from lora_nb.data import prepare
    from lora_nb.train import LoraSettings, Session, TrainSettings
    import pydoc_data.topics as t
    lm = load_model(quantization=quantization)
    texts = [v[:200 + 37 * (i % 9)] for i, v in enumerate(sorted(t.topics.values()))][:64]
    data = prepare([{'text': x} for x in texts], lm.tokenizer, eval_size=0, max_length=256)
    s = Session(lm, data, LoraSettings(r=16), TrainSettings(max_steps=12, per_device_train_batch_size=8, save_steps=1000), root=root)
    s.start(background=background)
    if background: s.wait()
    last = [r for r in s.run.read('metrics').records if 'tokens_per_s' in r][-1]
    return last['tokens_per_s']

def main(quantization='none'):
    with tempfile.TemporaryDirectory() as root:
        run_once(False, quantization, root)            # warm-up: first-use costs out of the comparison
        res = {'main': [], 'thread': []}
        for order in (('main', 'thread'), ('thread', 'main')):
            for w in order: res[w].append(run_once(w == 'thread', quantization, root))
    best = {k: max(v) for k, v in res.items()}
    emit(bench='thread_vs_main', quantization=quantization, tokens_per_s_main=round(best['main'], 1),
         tokens_per_s_thread=round(best['thread'], 1), ratio_thread_over_main=ratio(best['thread'], best['main']),
         runs={k: [round(x, 1) for x in v] for k, v in res.items()}, target='>= 0.95')

if __name__ == '__main__': main(*sys.argv[1:])
