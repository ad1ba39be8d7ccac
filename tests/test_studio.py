"""The Studio's panels driven headless (no browser): bad input shows a message by the field or a banner, keeps what
the person typed, and disables the button until fixed (hand-written)."""
import json, time
import pytest
from lora_nb.panels.studio_view import Studio

WORDS = ['loop', 'class', 'yield', 'raise']
TEXT = '\n'.join(json.dumps({'instruction': f'Reverse the word {w}.', 'output': w[::-1]}) for w in WORDS * 3)

@pytest.fixture
def studio(tmp_path): return Studio(root=tmp_path)

def _field(panel, key): return next(f for f in panel.fields if (f.key or f.name) == key)

def test_actions_in_the_wrong_order_get_a_banner(studio):
    studio.data.fields['text'].w.value = TEXT
    studio.data.prep_btn.click()
    assert 'Load a model first' in studio.data.banner.value and studio.data.fields['text'].w.value == TEXT
    studio.compare.prompts.w.value = 'hello'
    studio.compare.run_btn.click()
    assert 'Load a model first' in studio.compare.banner.value and studio.compare.prompts.w.value == 'hello'
    studio.train.start_btn.disabled = False
    studio.train.start_btn.click()
    assert 'Load a model first' in studio.train.banner.value
    studio.train.stop_btn.disabled = False
    studio.train.stop_btn.click()
    assert 'Nothing is training' in studio.train.banner.value
    studio.compare.vote_btns[0].click()
    assert 'Start a blind test first' in studio.compare.banner.value

def test_invalid_fields_show_messages_and_disable_buttons_until_fixed(studio):
    m = studio.model
    m.fields['source'].w.value = 'hub'
    m.fields['model_id'].w.value = ''
    assert m.load_btn.disabled and 'hub id' in m.fields['model_id'].err.value
    m.fields['source'].w.value = 'embedded'
    assert not m.load_btn.disabled
    t = studio.train
    for key, bad in [('lora.r', 0), ('train.learning_rate', '0'), ('train.learning_rate', 'fast'),
                     ('train.per_device_train_batch_size', 0), ('lora.lora_dropout', 1.5)]:
        _field(t, key).w.value = bad
        assert t.start_btn.disabled and _field(t, key).err.value, key
    for key, good in [('lora.r', 8), ('train.learning_rate', '1e-3'), ('train.per_device_train_batch_size', 2),
                      ('lora.lora_dropout', 0.0)]:
        _field(t, key).w.value = good
    assert not t.start_btn.disabled and not any(f.err.value for f in t.fields)
    assert studio.state.train.train['learning_rate'] == 1e-3
    _field(t, 'train.learning_rate').w.value = ' auto '   # empty or 'auto': chosen at Start
    assert studio.state.train.train['learning_rate'] is None and not t.start_btn.disabled
    d = studio.data
    d.fields['max_length'].w.value = 2
    assert d.prep_btn.disabled and 'max_length' in studio.state.data.errors()

def test_engine_errors_are_banners_and_nothing_typed_is_lost(studio, tmp_path):
    studio.model.fields['quantization'].w.value = 'none'
    studio.model.load_btn.click()
    bad = '{"messages": [{"role": "wizard", "content": "hi"}]}'
    studio.data.fields['text'].w.value = bad
    studio.data.prep_btn.click()
    assert "unknown roles" in studio.data.banner.value and 'Traceback' not in studio.data.banner.value
    assert studio.data.fields['text'].w.value == bad and studio.state.prepared is None
    (tmp_path/'latin.jsonl').write_bytes('{"text": "café"}\n'.encode('latin-1'))
    studio.data.fields['source'].w.value = 'path'
    studio.data.fields['path'].w.value = str(tmp_path/'latin.jsonl')
    studio.data.prep_btn.click()
    assert 'not UTF-8' in studio.data.banner.value and studio.data.fields['path'].w.value == str(tmp_path/'latin.jsonl')
    studio.model.fields['source'].w.value = 'hub'
    studio.model.fields['model_id'].w.value = 'org/not-here'
    studio.model.load_btn.click()
    assert studio.model.banner.value and studio.model.fields['model_id'].w.value == 'org/not-here'
    assert studio.state.lm is not None                       # the model loaded before is still there

def test_start_twice_and_mixing_adapters_of_different_bases(studio, tmp_path):
    st = studio.state
    studio.model.fields['quantization'].w.value = 'none'
    studio.model.load_btn.click()
    studio.data.fields['text'].w.value = TEXT
    studio.data.fields['eval_size'].w.value = 0.0
    studio.data.prep_btn.click()
    _field(studio.train, 'train.max_steps').w.value = 300
    studio.train.start_btn.click()
    assert st.session.running and studio.train.start_btn.disabled
    assert st.train.start(st) is None and 'already running' in st.banner
    studio.model.load_btn.click()
    assert 'stop it before loading another model' in studio.model.banner.value and st.session.running
    studio.compare.prompts.w.value = 'Reverse the word for.'
    studio.compare.run_btn.click()
    assert 'Training is running' in studio.compare.banner.value
    studio.train.stop_btn.click()
    assert st.session.wait(120) == 'stopped' and not studio.train.start_btn.disabled
    first = st.session.run
    # an adapter that says it was trained on another base is refused when loaded
    other = tmp_path/'other-run'
    import shutil
    shutil.copytree(first.path, other)
    cfg = json.loads((other/'adapter'/'adapter_config.json').read_text())
    cfg['base_model_name_or_path'] = 'org/other-base'
    (other/'adapter'/'adapter_config.json').write_text(json.dumps(cfg))
    info = json.loads((other/'run.json').read_text())
    info['id'] = 'other-run'
    (other/'run.json').write_text(json.dumps(info))
    studio.adapters.refresh()
    studio.adapters.runs.value = 'other-run'
    studio.adapters.name.value = 'alien'
    studio.adapters.load_btn.click()
    assert "trained on &#x27;org/other-base&#x27;" in studio.adapters.banner.value
    studio.adapters.runs.value = first.id
    studio.adapters.name.value = 'mine'
    studio.adapters.load_btn.click()
    assert 'mine' in st.loaded_adapters()
    st.lm.model.peft_config['mine'].base_model_name_or_path = 'org/other-base'   # as if loaded by hand
    studio.adapters.mix_name.value = 'blend'
    studio.adapters.mix_btn.click()
    assert 'different base models' in studio.adapters.banner.value

def test_data_panel_reads_a_dataset_folder_with_a_column_mapping(tmp_path):
    "The Data tab's Hub source (an id, or a local dataset folder) with a split slice and field=column pairs."
    from lora_nb.panels.data import DataState
    from lora_nb.models import load_model
    repo = tmp_path/'qa'
    (repo/'data').mkdir(parents=True)
    rows = [{'question': f'Reverse {w}.', 'answer': w[::-1]} for w in ('loop', 'class', 'yield', 'raise')]
    (repo/'data'/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    d = DataState(source='hub', hub=str(repo), split='train[:3]', columns='instruction=question, output=answer',
                  eval_size=0)
    assert d.errors() == {}
    p = d.prepare_with(load_model(quantization='none').tokenizer)
    assert (len(p.train), p.format) == (3, 'instruction')
    assert d.settings()['columns'] == {'instruction': 'question', 'output': 'answer'}
    assert 'field=column pairs' in DataState(columns='instruction:question').errors()['columns']
    assert 'org/name' in DataState(source='hub').errors()['hub']

def _trained(studio, name:str, steps:int=2):
    "Train a short run named `name` from the Train tab; returns its run."
    studio.train.run_name.value = name
    _field(studio.train, 'train.max_steps').w.value = steps
    studio.train.start_btn.click()
    assert studio.state.session is not None, studio.train.banner.value
    assert studio.state.session.wait(120) == 'completed'
    return studio.state.session.run

@pytest.fixture
def ready(studio):
    "A Studio with the embedded model loaded (full precision) and the words prepared (2 held out)."
    studio.model.fields['quantization'].w.value = 'none'
    studio.model.load_btn.click()
    studio.data.fields['text'].w.value = TEXT
    studio.data.fields['eval_size'].w.value = 2.0
    studio.data.prep_btn.click()
    assert studio.state.prepared is not None, studio.data.banner.value
    return studio

def test_save_and_mix_act_on_the_adapter_the_tab_shows(ready, tmp_path):
    "A run trained from a cell reuses the PEFT name `default`: a Save drawn before is refused, the labels redrawn."
    st, ap = ready.state, ready.adapters
    first = _trained(ready, 'first')
    ready.tabs.selected_index = 5
    assert ap.save_run.value == 'default' and ap.sliders['default'].description.startswith('first (')
    second = st.train.start(st, name='second')                         # from a cell: the tab is not told
    assert second.wait(120) == 'completed'
    second = second.run                                      # `default` is now the second run's adapter
    assert st.adapter_runs['default'] == second.id != first.id
    ap.out.value = str(tmp_path/'saved')
    ap.save_btn.click()                                      # the tab still shows 'first': nothing is saved
    assert 'changed since this tab was drawn' in ap.banner.value and not (tmp_path/'saved').exists()
    assert ap.sliders['default'].description.startswith('second (')   # redrawn: every label is the truth now
    ap.save_btn.click()
    assert 'Saved “second (' in ap.banner.value and second.id in ap.banner.value, ap.banner.value

def test_a_picked_up_run_offers_its_adapter_and_its_banner_goes(ready, tmp_path):
    "Pick up in a new Studio: the adapter is offered at once; Resume clears the pick-up line; the end refreshes tabs."
    st = ready.state
    _field(ready.train, 'train.save_steps').w.value = 2
    ready.train.run_name.value = 'longer'
    _field(ready.train, 'train.max_steps').w.value = 8
    ready.train.start_btn.click()
    s = st.session
    while s.running and not any(r.get('step', 0) >= 3 for r in s.run.read('metrics').records): time.sleep(0.05)
    ready.train.stop_btn.click()
    assert s.wait(120) == 'stopped'
    again = Studio(root=tmp_path)                            # a new kernel
    again.pickup.on_pick()
    assert 'Picked up' in again.pickup.banner.value and again.train.run_name.value == 'longer'
    assert [lab for lab, _ in again.chat.adapter.options][-1].startswith('longer (')   # no load needed
    again.tabs.selected_index = 4                            # the Chat tab stays open while the run resumes
    again.train.resume_btn.click()
    assert again.pickup.banner.value == ''                   # "Resume continues it" is old news now
    assert again.state.session.wait(120) == 'completed'
    t0 = time.time()
    while time.time() - t0 < 10 and not [v for _, v in again.chat.adapter.options if v]: time.sleep(0.1)
    assert [lab for lab, _ in again.chat.adapter.options][-1].startswith('longer ('), again.chat.adapter.options

def test_prompts_from_the_eval_split_ask_before_replacing_typed_ones(ready):
    c = ready.compare
    c.prompts.w.value = 'my own prompt'
    c.from_eval.click()
    assert c.prompts.w.value == 'my own prompt' and 'you typed' in c.banner.value   # asked, nothing lost
    c.from_eval.click()                                      # asked and confirmed
    assert c.prompts.w.value != 'my own prompt' and c.prompts.w.value.startswith('Reverse the word')
    c.prompts.w.value = 'another'
    c.from_eval.click()                                      # typing again: it asks again
    assert c.prompts.w.value == 'another'

def test_a_quantized_estimate_heavier_than_none_says_why():
    from lora_nb.panels.model import ModelState
    e4, e0 = ModelState(quantization='4bit').estimate(), ModelState(quantization='none').estimate()
    if e4.settings['dtype'] == e0.settings['dtype']: pytest.skip("this CPU loads 'none' in float32 too")
    note = ModelState(quantization='4bit').heavier_note()
    assert e4.total > e0.total and e4.settings['dtype'] in note and e0.settings['dtype'] in note, note

def test_the_model_tabs_estimate_follows_the_train_and_data_tabs(studio):
    "The estimate and its 'more than this machine has free' check use the Train tab's r and batch size and the Data "
    "tab's max_length (they were fixed at r=16, batch 4, 512 tokens whatever those tabs said)."
    st, m = studio.state, studio.model
    before = st.model.estimate(st)
    studio.show('train')                                     # the person goes to the Train tab, then to the Data tab
    _field(studio.train, 'lora.r').w.value = 64
    assert st.model.estimate(st).settings['r'] == 64 and st.model.estimate(st).lora_params > before.lora_params
    _field(studio.train, 'train.per_device_train_batch_size').w.value = 16
    studio.data.fields['max_length'].w.value = 2048
    e = st.model.estimate(st)
    assert (e.settings['batch_size'], e.settings['max_length']) == (16, 2048) and e.activations > before.activations
    studio.show('model')                                     # back on the Model tab: what it shows, and warns about
    assert 'r=64, batch 16×2048 tokens' in m.estimate.value, m.estimate.value
    from lora_nb.panels.model_view import estimate_html
    assert estimate_html(e) in m.estimate.value
