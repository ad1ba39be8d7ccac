"""P4: training step time with the full Studio displayed and updating ÷ the same training headless.

Each measurement runs in a fresh, real IPython kernel (jupyter_client), so widget and figure updates are serialized
and sent over the kernel's IOPub channel as they would be to JupyterLab; this client drains them. Headless: a
`Session` started directly. Studio: the same settings through the Studio's panels (Load, Prepare, Start), with the
live figure, progress bar and status updated from the training thread, and the Chat tab open (idle) meanwhile.
Alternating order, twice each; the best of each is compared (a run slowed by another process on this shared 2-core
machine shows in `runs_seconds`) (hand-written).
"""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from harness import emit, ratio, ROOT

SETUP = r'''
import json, tempfile, time
from lora_nb.demo import load_demo_data
train, _ = load_demo_data()
TEXT = '\n'.join(json.dumps({'instruction': r['instruction'], 'output': r['output']}) for r in train[:160])
STEPS = 24
TRAIN = dict(max_steps=STEPS, per_device_train_batch_size=4, learning_rate=1e-3, save_steps=1000, logging_steps=1)
'''
HEADLESS = r'''
from lora_nb.models import load_model
from lora_nb.data import prepare
from lora_nb.train import LoraSettings, Session, TrainSettings
lm = load_model(quantization='none')
data = prepare(TEXT, lm.tokenizer, eval_size=0.0, max_length=512)
s = Session(lm, data, LoraSettings(r=16), TrainSettings(**TRAIN), root=tempfile.mkdtemp())
s.start()
s.wait()
'''
STUDIO = r'''
from lora_nb import Studio
studio = Studio(root=tempfile.mkdtemp())
display(studio)
studio.model.fields['quantization'].w.value = 'none'
studio.model.load_btn.click()
studio.data.fields['text'].w.value = TEXT
studio.data.fields['eval_size'].w.value = 0.0
studio.data.prep_btn.click()
for k, v in TRAIN.items():   # the learning rate and passes are text fields ('auto' or a number)
    w = studio.train.fields['train.' + k].w
    w.value = str(v) if isinstance(w.value, str) else v
studio.train.fields['lora.r'].w.value = 16
studio.train.start_btn.click()
studio.tabs.selected_index = 4        # the Chat tab open and idle while it trains (the plot keeps updating)
s = studio.state.session
s.wait()
'''
REPORT = r'''
m = [r for r in s.run.read('metrics').records if 'loss' in r]
print('RESULT' + json.dumps(dict(status=s.status, train_runtime=s.trainer.state.log_history[-1].get('train_runtime'),
      steps=s.trainer.state.global_step)))
'''

def run_in_kernel(code:str) -> dict:
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name='python3', cwd=str(ROOT))
    msgs = 0
    try:
        result = None
        for cell in (SETUP, code, REPORT):
            msg_id = kc.execute(cell)
            while True:
                m = kc.get_iopub_msg(timeout=600)
                msgs += 1
                c = m['content']
                if m['msg_type'] == 'stream' and 'RESULT' in c.get('text', ''):
                    result = json.loads(c['text'].split('RESULT', 1)[1].splitlines()[0])
                if m['msg_type'] == 'error': raise RuntimeError('\n'.join(c['traceback'])[-3000:])
                idle = m['msg_type'] == 'status' and c['execution_state'] == 'idle'
                if idle and m['parent_header'].get('msg_id') == msg_id: break
        return {**result, 'iopub_messages': msgs}
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

def main():
    res = {'headless': [], 'studio': []}
    for order in (('headless', 'studio'), ('studio', 'headless')):
        for w in order: res[w].append(run_in_kernel(HEADLESS if w == 'headless' else STUDIO))
    best = {w: min(r['train_runtime'] / r['steps'] for r in rs) for w, rs in res.items()}
    emit(bench='studio_overhead', steps=res['studio'][0]['steps'], seconds_per_step_headless=round(best['headless'], 4),
         seconds_per_step_studio=round(best['studio'], 4),
         ratio_headless_over_studio=ratio(best['headless'], best['studio']),
         runs_seconds={w: [round(r['train_runtime'], 2) for r in rs] for w, rs in res.items()},
         iopub_messages_headless=res['headless'][0]['iopub_messages'],
         iopub_messages_studio=res['studio'][0]['iopub_messages'],
         target='ratio >= 0.97 (step time with the Studio / headless <= 1/0.97)')

if __name__ == '__main__': main()
