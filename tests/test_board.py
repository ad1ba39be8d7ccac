"""The leaderboard (lora_nb.board, hand-written tests): Bradley–Terry ratings where the answer is known, intervals that
narrow with more games, ties and 'both bad' counted half, disconnected comparison graphs, runs without games, the
choice of eval set and metric, and vote records old and new, read from real run folders."""
import json, math, random
import numpy as np
import pytest
from lora_nb.board import (BASE, ELO, EMBEDDED, BoardError, board_table, fit_bt, games, leaderboard, ratings,
                           score_matrix, scores)
from lora_nb.runs import RUN_FILES, Run, append_jsonl

def elo(p:float) -> float: return 1000 + 400 * math.log10(p)

def simulate(strengths:dict, n:int, seed:int=0) -> list:
    "`n` games per pair of players drawn from Bradley–Terry with `strengths` (Elo points)."
    rng, ps, out = random.Random(seed), list(strengths), []
    for i, x in enumerate(ps):
        for y in ps[i + 1:]:
            px = 1 / (1 + 10 ** ((strengths[y] - strengths[x]) / 400))
            out += [(x, y, 1.0 if rng.random() < px else 0.0) for _ in range(n)]
    return out

def test_known_order_and_values():
    "Games drawn from known strengths: the ratings come back in order and close to them."
    true = {BASE: 1000, 'a': 1100, 'b': 1250, 'c': 900}
    r = ratings(simulate(true, 600), n_boot=100)
    assert sorted(true, key=lambda p: -r[p]['value']) == ['b', 'a', BASE, 'c']
    for p, v in true.items():
        assert abs(r[p]['value'] - v) < 35, (p, r[p], v)
        assert r[p]['low'] <= v <= r[p]['high'] or p == BASE, (p, r[p], v)   # the truth inside its interval
    assert r[BASE] == {'value': 1000.0, 'low': 1000.0, 'high': 1000.0}

def test_closed_form_with_the_prior():
    "Two players: p = (wins + ½) / (losses + ½), the prior's tie included; an unbeaten run stays finite."
    for w, l in ((3, 1), (10, 0), (0, 4)):
        g = [('a', BASE, 1.0)] * w + [('a', BASE, 0.0)] * l
        assert ratings(g, n_boot=0)['a']['value'] == pytest.approx(elo((w + 0.5) / (l + 0.5)), abs=0.06)
    assert ratings([('a', BASE, 1.0)] * 10, n_boot=0)['a']['value'] == pytest.approx(1528.9, abs=0.1)

def test_newton_agrees_with_minorize_maximize():
    "fit_bt (Newton) and Hunter's MM iteration reach the same maximum on a random 6-player set."
    rng = np.random.default_rng(1)
    i, j = rng.integers(0, 6, 300), rng.integers(0, 6, 300)
    keep = i != j
    S = score_matrix(i[keep], j[keep], rng.choice([0.0, 0.5, 1.0], keep.sum()), 6)
    N, W, p = S + S.T, S.sum(1), np.ones(6)
    for _ in range(20000):
        p = W / (N / (p[:, None] + p[None, :])).sum(1)
        p /= p[0]
    assert np.allclose(fit_bt(S), np.log(p), atol=1e-6)

def test_intervals_narrow_with_more_games():
    true = {BASE: 1000, 'a': 1150}
    width = lambda n: (lambda r: r['a']['high'] - r['a']['low'])(ratings(simulate(true, n, seed=n), n_boot=300))
    small, large = width(25), width(400)
    assert large < 0.5 * small, (small, large)          # 16× the games: about ¼ the width

def test_ties_and_both_bad_count_half(tmp_path):
    "A tie and a 'both bad' are each half a win to both sides, as votes.tally counts them."
    assert ratings([('a', BASE, 0.5)] * 8, n_boot=0)['a']['value'] == 1000.0
    one_and_half = ratings([('a', BASE, 1.0), ('a', BASE, 0.5)], n_boot=0)['a']['value']
    assert one_and_half == pytest.approx(elo((1.5 + 0.5) / (0.5 + 0.5)), abs=0.06)
    boards = []
    for w in ('tie', 'both_bad'):
        run = Run.create({}, name='r', root=tmp_path/w)
        run.log('votes', *({'a': BASE, 'b': 'r', 'winner': x} for x in ('r', w, w, BASE, 'r')))
        boards.append(leaderboard(tmp_path/w, n_boot=50))
    assert [r['rating'] for r in boards[0]['rows']] == [r['rating'] for r in boards[1]['rows']]

def test_disconnected_graph_is_anchored_by_the_prior():
    "x and y only ever met each other; z only met the base: all finite, x above y, the pair centred on 1000."
    g = [('x', 'y', 1.0)] * 6 + [('x', 'y', 0.0)] * 2 + [('z', BASE, 1.0)] * 3
    r = ratings(g, n_boot=200)
    assert all(math.isfinite(v) for p in r.values() for v in p.values())
    assert r['x']['value'] > 1000 > r['y']['value']
    assert r['x']['value'] + r['y']['value'] == pytest.approx(2000, abs=0.2)
    assert r['z']['value'] > 1000

def test_no_games(tmp_path):
    "No votes at all: every rating is null, the base's too; a run without games among rated ones: null, 0 games."
    a = Run.create({}, name='a', root=tmp_path)
    b = leaderboard(tmp_path)
    assert b['games'] == 0 and [(r['rating'], r['games']) for r in b['rows']] == [(None, 0), (None, 0)]
    assert (b['data'], b['metric'], b['sets']) == (None, None, [])
    quiet = Run.create({}, name='quiet', root=tmp_path)
    a.log('votes', {'a': BASE, 'b': 'a', 'winner': 'a'})
    rows = {r['run']: r for r in leaderboard(tmp_path)['rows']}
    assert rows[quiet.id]['rating'] is None and rows[quiet.id]['games'] == 0
    assert rows[a.id]['rating']['value'] > 1000 and rows[a.id]['games'] == 1
    assert leaderboard(tmp_path/'nothing-here') == dict(bases=[], base=None, sets=[], data=None, metric=None, rows=[],
                                                        games=0)

def evaluation(run, fp, figs, t, metrics=('exact_match',), store=None, **data):
    "An evals.jsonl record (the issue-27 contract) with `figs` column -> value, kept in `store` (default `run`)."
    cols = {c: {'run': None if c == BASE else (run.id if c == 'own' else c)} for c in figs}
    fig = lambda v: dict(value=v, low=v - 0.05, high=v + 0.05, n=50, errors=0)
    rec = dict(id=f'ev-{fp}-{t}', time=f'2026-12-08T01:{t:02d}:00+00:00', kind='metrics', metrics=list(metrics),
               data=dict(name=f'set {fp}', fingerprint=fp, n=50, **data), columns=cols,
               figures={c: {m: fig(v) for m in metrics} for c, v in figs.items()})
    append_jsonl((store or run).path/RUN_FILES['evals'], rec)
    return rec

def test_eval_set_selection(tmp_path):
    "Default: the set on the most runs and its first metric; the newest figure counts; a set or metric asked by name."
    a, b, c = (Run.create({}, name=n, root=tmp_path) for n in 'abc')
    evaluation(a, 'small', {BASE: 0.1, 'own': 0.5}, 1, metrics=('exact_match', 'chrf'))
    evaluation(a, 'small', {BASE: 0.1, 'own': 0.6}, 5, metrics=('exact_match', 'chrf'))     # a's newest on 'small'
    evaluation(b, 'small', {BASE: 0.1, 'own': 0.7}, 2, metrics=('exact_match', 'chrf'))
    evaluation(c, 'other', {BASE: 0.3, 'own': 0.9}, 9)
    evaluation(c, 'small', {BASE: 0.1, 'own': 0.2}, 4, metrics=('exact_match', 'chrf'))
    evaluation(a, 'other', {BASE: 0.3, b.id: 0.8}, 3, store=a)     # b's figure, kept in a's file
    bd = leaderboard(tmp_path, n_boot=0)
    assert [(s['fingerprint'], s['runs'], s['metrics']) for s in bd['sets']] == [
        ('small', 3, ['exact_match', 'chrf']), ('other', 2, ['exact_match'])]
    assert (bd['data'], bd['metric']) == ('small', 'exact_match')
    got = {r['name']: (r['metric'] or {}).get('value') for r in bd['rows']}
    assert got == {'a': 0.6, 'b': 0.7, 'c': 0.2, EMBEDDED: 0.1}
    assert [r['name'] for r in bd['rows']] == ['b', 'a', 'c', EMBEDDED]      # no ratings: by the metric, best first
    other = leaderboard(tmp_path, data='other', n_boot=0)
    assert {r['name']: (r['metric'] or {}).get('value') for r in other['rows']} == {'a': None, 'b': 0.8, 'c': 0.9,
                                                                                   EMBEDDED: 0.3}
    assert leaderboard(tmp_path, metric='chrf', n_boot=0)['data'] == 'small'
    with pytest.raises(BoardError, match="has no figures for metric 'bleu'"): leaderboard(tmp_path, metric='bleu')
    with pytest.raises(BoardError, match='No evaluation of these runs used'): leaderboard(tmp_path, data='x')

def test_lower_is_better_metrics_sort_ascending(tmp_path):
    a, b = (Run.create({}, name=n, root=tmp_path) for n in 'ab')
    evaluation(a, 's', {BASE: 9.0, 'own': 4.0}, 1, metrics=('perplexity',))
    evaluation(b, 's', {BASE: 9.0, 'own': 3.0}, 2, metrics=('perplexity',))
    assert [r['name'] for r in leaderboard(tmp_path)['rows']] == ['b', 'a', EMBEDDED]

def test_one_base_at_a_time(tmp_path):
    "Runs on another base are on their own board, and a vote naming one of them counts on neither."
    a = Run.create({}, name='a', root=tmp_path, base_model='HuggingFaceTB/SmolLM2-135M')
    b, c = (Run.create({}, name=n, root=tmp_path, base_model=None) for n in 'bc')
    b.log('votes', {'a': 'x', 'b': 'y', 'winner': 'x', 'runs': {'x': b.id, 'y': a.id}},
          {'a': 'x', 'b': 'y', 'winner': 'y', 'runs': {'x': b.id, 'y': c.id}})
    bd = leaderboard(tmp_path)
    assert bd['bases'] == [{'model': EMBEDDED, 'runs': 2}, {'model': 'HuggingFaceTB/SmolLM2-135M', 'runs': 1}]
    assert bd['games'] == 1 and {r['name'] for r in bd['rows']} == {'b', 'c', EMBEDDED}
    other = leaderboard(tmp_path, base='HuggingFaceTB/SmolLM2-135M')
    assert other['games'] == 0 and [r['name'] for r in other['rows']] == ['HuggingFaceTB/SmolLM2-135M', 'a']
    with pytest.raises(BoardError, match='No run was trained on base') as e: leaderboard(tmp_path, base='gpt2')
    assert EMBEDDED in e.value.hint

def test_old_and_new_vote_records(tmp_path):
    """Without `runs`: the base column ('__base__', or the Compare tab's 'base') is the base, any other the run holding
    the record; two adapters of one run play no game. With `runs`: the runs named, wherever the record is kept."""
    a, b, c = (Run.create({}, name=n, root=tmp_path) for n in 'abc')
    a.log('votes', {'a': '__base__', 'b': 'default', 'winner': 'default'},
          {'a': 'base', 'b': 'a (10:00)', 'winner': 'a (10:00)'},
          {'a': 'slow', 'b': 'fast', 'winner': 'fast'})                            # one run's two adapters: no game
    a.log('votes', {'a': 'x', 'b': 'y', 'winner': 'y', 'runs': {'x': b.id, 'y': c.id}},   # b vs c, kept in a
          {'a': 'base', 'b': 'y', 'winner': 'base', 'runs': {'base': BASE, 'y': c.id}},
          {'a': 'x', 'b': 'file', 'winner': 'x', 'runs': {'x': b.id, 'file': None}})   # an adapter from a file
    with open(a.path/'judgments.jsonl', 'w') as f:                                   # judge verdicts, old shape
        for w in ('default', 'invalid', 'tie'):
            f.write(json.dumps({'a': '__base__', 'b': 'default', 'winner': w, 'judge': {'kind': 'model'}}) + '\n')
    g = sorted(games([a, b, c]))
    assert g == sorted([(BASE, a.id, 0.0), (BASE, a.id, 0.0), (b.id, c.id, 0.0), (BASE, c.id, 1.0),
                        (BASE, a.id, 0.0), (BASE, a.id, 0.5)])
    rows = {r['run']: r for r in leaderboard(tmp_path)['rows']}
    assert (rows[a.id]['games'], rows[b.id]['games'], rows[c.id]['games'], rows[BASE]['games']) == (4, 1, 2, 5)

def test_a_vote_kept_in_two_runs_counts_once(tmp_path):
    a, b = (Run.create({}, name=n, root=tmp_path) for n in 'ab')
    v = {'time': 1.0, 'prompt': 'p', 'a': 'x', 'b': 'y', 'winner': 'x', 'runs': {'x': a.id, 'y': b.id}}
    a.log('votes', v)
    b.log('votes', v)
    assert games([a, b]) == [(a.id, b.id, 1.0)]

def test_blind_test_votes_between_runs_reach_the_board(tmp_path):
    "BlindTest(runs=) between two runs' adapters: its votes are games between those runs."
    from lora_nb.generation import Comparison
    from lora_nb.votes import BlindTest
    a, b = (Run.create({}, name=n, root=tmp_path) for n in ('short', 'long'))
    cmp = Comparison([f'p{i}' for i in range(6)], ['short', 'long'],
                     [{'short': f's{i}', 'long': f'l{i}'} for i in range(6)])
    bt = BlindTest(cmp, 'short', 'long', run=b, runs={'short': a.id, 'long': b.id})
    for i in range(6):
        p = bt.pair(i)
        bt.vote(i, 'left' if p['left'].startswith('l') else 'right')        # the long answers win
    rows = {r['name']: r for r in leaderboard(tmp_path)['rows']}
    assert rows['long']['rating']['value'] > rows['short']['rating']['value'] and rows['long']['games'] == 6
    assert rows[EMBEDDED]['games'] == 0

def test_damaged_files_are_skipped(tmp_path):
    a = Run.create({}, name='a', root=tmp_path)
    (a.path/'votes.jsonl').write_text('not json\n[1]\n{"a": "__base__", "b": "a", "winner": 3}\n{"a": "__base__"')
    (a.path/'evals.jsonl').write_text('{"data": 1}\nnope\n{"figures": {}, "data": {}, "metrics": []}\n')
    bd = leaderboard(tmp_path)
    assert bd['games'] == 0 and bd['sets'] == [] and [r['rating'] for r in bd['rows']] == [None, None]

def test_table(tmp_path):
    a = Run.create({}, name='a', root=tmp_path)
    evaluation(a, 's', {BASE: 0.25, 'own': 0.75}, 1)
    a.log('votes', *[{'a': BASE, 'b': 'a', 'winner': 'a', 'prompt': f'q{k}'} for k in range(3)])   # distinct votes
    text = board_table(leaderboard(tmp_path, n_boot=50))
    lines = text.splitlines()
    assert lines[0] == f"base {EMBEDDED}: exact_match on set s; 3 games (votes and judgments)"
    assert lines[1].split() == ['run', 'name', 'exact_match', 'rating', 'games']
    assert lines[2].startswith(a.id) and '0.75 [0.7, 0.8]' in lines[2] and lines[2].endswith(' 3')
    assert board_table(leaderboard(tmp_path/'none')) == 'no runs'

def test_scores_matrix():
    S = scores([('a', 'b', 1.0), ('a', 'b', 0.5)], [BASE, 'a', 'b'])
    assert S.tolist() == [[0, 0.5, 0.5], [0.5, 0, 1.5], [0.5, 0.5, 0]]
    assert ELO == pytest.approx(173.72, abs=0.01)

def test_a_real_evaluation_on_the_board(tmp_path):
    """`lora_nb.evaluation.evaluate` on the embedded model with two runs' adapters: the board reads the record it
    stored (the figures, the eval set, the base's row) as written, and the sidebar row shows the latest."""
    from peft import LoraConfig, get_peft_model
    from lora_nb.demo import load_demo_data
    from lora_nb.evaluation import evaluate
    from lora_nb.lab.runview import summary_row
    from lora_nb.models import load_model
    lm = load_model(quantization='none')
    a, b = (Run.create({}, name=n, root=tmp_path, base_model=EMBEDDED) for n in ('first', 'second'))
    model = get_peft_model(lm.model, LoraConfig(r=4, target_modules=['q_proj', 'v_proj'], init_lora_weights=False),
                           adapter_name='first')
    model.add_adapter('second', LoraConfig(r=4, target_modules=['q_proj', 'v_proj'], init_lora_weights=False))
    test = load_demo_data()[1][:12]
    ev = evaluate(model, lm.tokenizer, test, ['exact_match', 'chrf'], runs={'first': a.id, 'second': b.id},
                  max_new_tokens=6, root=tmp_path)
    bd = leaderboard(tmp_path, metric='chrf', n_boot=0)
    fp = ev.record()['data']['fingerprint']
    assert (bd['data'], bd['sets'][0]['runs'], bd['sets'][0]['n']) == (fp, 2, 12)
    got = {r['run']: r['metric']['value'] for r in bd['rows']}
    assert got == {a.id: ev.figures['first']['chrf']['value'], b.id: ev.figures['second']['chrf']['value'],
                   BASE: ev.figures[BASE]['chrf']['value']}
    row = summary_row(a)['eval']
    assert (row['metric'], row['own']['value'], row['data']['fingerprint']) == (
        'exact_match', ev.figures['first']['exact_match']['value'], fp)

def test_the_command(tmp_path):
    "`lora-nb runs --board` as a user runs it: the table, --json, and a refused metric in one line with exit code 2."
    import subprocess, sys
    from pathlib import Path
    exe = str(Path(sys.executable).parent/'lora-nb')
    a = Run.create({}, name='a', root=tmp_path)
    evaluation(a, 's', {BASE: 0.25, 'own': 0.75}, 1)
    a.log('votes', *[{'a': 'base', 'b': 'a (10:00)', 'winner': 'a (10:00)'}] * 2)     # the Compare tab's labels
    run = lambda *args: subprocess.run([exe, 'runs', '--board', '--runs-root', str(tmp_path), *args],
                                       capture_output=True, text=True, timeout=120)
    r = run()
    assert r.returncode == 0 and r.stdout.splitlines()[2].split()[:3] == [a.id, 'a', '0.75'], r.stdout + r.stderr
    j = json.loads(run('--json').stdout)
    assert j['games'] == 2 and j['rows'][0]['rating']['value'] > 1000
    r = run('--metric', 'chrf')
    assert r.returncode == 2 and r.stderr.startswith("lora-nb: Eval set 's' has no figures for metric 'chrf'"), r.stderr

def test_one_game_gives_a_wide_interval_not_a_point():
    "Resampling a single game always draws that game: the interval comes from the likelihood's curvature then."
    from lora_nb.board import ratings
    one = ratings([('a', '__base__', 1.0)])['a']
    many = ratings([('a', '__base__', 1.0)] * 40 + [('a', '__base__', 0.0)] * 10)['a']
    assert one['high'] - one['low'] > 500 and one['low'] < one['value'] < one['high']
    assert many['high'] - many['low'] < (one['high'] - one['low']) / 2
