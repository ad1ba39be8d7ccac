"""P5: the base and 2 adapters answering 8 prompts in one mixed batch (PEFT `adapter_names`) ÷ three sequential
`generate` calls (base with adapters disabled, then each adapter), greedy: wall time and whether the tokens are
identical. Embedded model, full precision and 4-bit, fresh process each (hand-written).
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, measure, ratio

CHILD = r'''
import sys, time, tempfile, torch
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.train import LoraSettings, Session, TrainSettings
from lora_nb.generation import compare, _encode, BASE
from lora_nb.adapters import load as add_adapter
from lora_nb.demo import load_demo_data
sys.path.insert(0, 'bench'); from harness import emit
q = sys.argv[1]; root = tempfile.mkdtemp()
train, test = load_demo_data()
data = prepare(train[:64], load_model(quantization='none').tokenizer, eval_size=0)
runs = []
for lr in (1e-3, 3e-3):
    train = TrainSettings(max_steps=4, learning_rate=lr, save_steps=100)
    s = Session(load_model(quantization=q), data, LoraSettings(r=8), train, root=root)
    s.start().wait(); runs.append(s.run)
lm = load_model(quantization=q)
m = add_adapter(add_adapter(lm.model, runs[0].path, 'one'), runs[1].path, 'two'); m.eval()
prompts = [r['instruction'] for r in test[:8]]; tok = lm.tokenizer
def sequential():
    out = {}
    for name in (BASE, 'one', 'two'):
        enc = _encode(tok, prompts, True)
        with torch.no_grad():
            gen = dict(max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)
            if name == BASE:
                with m.disable_adapter(): g = m.generate(**enc, **gen)
            else:
                m.set_adapter(name)
                g = m.generate(**enc, **gen)
        out[name] = tok.batch_decode(g[:, enc['input_ids'].shape[1]:], skip_special_tokens=True)
    return out
def mixed():
    c = compare(m, tok, prompts, adapters=['one', 'two'], max_new_tokens=24)
    return {n: [o[n] for o in c.outputs] for n in c.columns}
mixed(); sequential()                                     # warm up
tm, ts = [], []
for _ in range(3):
    t = time.perf_counter(); a = mixed(); tm.append(time.perf_counter() - t)
    t = time.perf_counter(); b = sequential(); ts.append(time.perf_counter() - t)
emit(mixed_s=min(tm), sequential_s=min(ts), identical=a == b,
     differ_from_base=sum(x != y for x, y in zip(a[BASE], a['two'])))
'''

def main():
    out = {}
    for q in ('none', '4bit'):
        r = measure(CHILD, q)
        out[q] = dict(mixed_s=round(r['mixed_s'], 3), sequential_s=round(r['sequential_s'], 3),
                      speedup_mixed=ratio(r['sequential_s'], r['mixed_s']), identical_greedy_tokens=r['identical'],
                      prompts_where_adapter_differs_from_base=r['differ_from_base'])
    emit(bench='mixed_batch', prompts=8, columns=3, **out, target='speedup >= 1.5 with identical tokens')

if __name__ == '__main__': main()
