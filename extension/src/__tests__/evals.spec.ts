/** Evaluations and the leaderboard: their text, the board's model and the blind A/B notebook (hand-made replies). */
import type { Contents } from '@jupyterlab/services';

import type { Fetcher, IBoard, IBoardRow, IEvalRecord, IEvalSummary } from '../api';
import { BASE } from '../api';
import {
  blindAbNotebook,
  blindAbSource,
  boardEndpoint,
  boardKey,
  BoardModel,
  createBlindAb,
  pyString,
  sortRows
} from '../board';
import {
  boardName,
  boardSummary,
  dataText,
  evalLine,
  evalRows,
  evalTitle,
  formatFigure,
  formatRating,
  isShare,
  lowerIsBetter,
  shortTime
} from '../evals';
import { summary } from './fake';

const TUNED = 'tuned-20261208-012345-3f2a';

/** A record as spec27's evals.jsonl line has it. */
function record(over: Partial<IEvalRecord> = {}): IEvalRecord {
  return {
    id: 'ev-20261208T012345-3f2a',
    time: '2026-12-08T01:23:45+00:00',
    kind: 'metrics',
    data: { name: 'eval split of demo', fingerprint: '9c1e', n: 60 },
    metrics: ['exact_match', 'chrf'],
    settings: { max_new_tokens: 64, chat: true, system: null, batch_size: 16, limit: null },
    seed: 0,
    base: { model: 'HuggingFaceTB/SmolLM2-135M-Instruct', revision: null },
    columns: { [BASE]: { run: null }, tuned: { run: TUNED, adapter: '/abs/path/adapter' } },
    figures: {
      [BASE]: {
        exact_match: { value: 0.0, low: 0.0, high: 0.06, n: 60, errors: 0 },
        chrf: { value: 21.4, low: 18.02, high: 24.9, n: 60, errors: 0 }
      },
      tuned: {
        exact_match: { value: 0.98, low: 0.93, high: 1.0, n: 60, errors: 0 },
        chrf: { value: 97.1, low: 94.2, high: 99.3, n: 60, errors: 0 }
      }
    },
    examples: 'evals/ev-20261208T012345-3f2a.jsonl',
    ...over
  };
}

const LATEST: IEvalSummary = {
  id: 'ev-20261208T012345-3f2a',
  time: '2026-12-08T01:23:45+00:00',
  data: { name: 'eval split of demo', fingerprint: '9c1e', n: 60 },
  metric: 'exact_match',
  own: { value: 0.98, low: 0.93, high: 1.0, n: 60 },
  base: { value: 0.0, low: 0.0, high: 0.06, n: 60 }
};

function row(run: string, value: number | null, rating: number | null, games = 4): IBoardRow {
  return {
    run,
    name: run === BASE ? 'base' : run.split('-')[0],
    metric: value === null ? null : { value, low: value - 0.05, high: Math.min(1, value + 0.05), n: 60 },
    rating: rating === null ? null : { value: rating, low: rating - 40.4, high: rating + 39.6 },
    games
  };
}

function board(over: Partial<IBoard> = {}): IBoard {
  return {
    bases: [
      { model: 'tiny', runs: 3 },
      { model: 'other', runs: 1 }
    ],
    base: 'tiny',
    sets: [{ fingerprint: '9c1e', name: 'eval split of demo', n: 60, metrics: ['exact_match', 'chrf'], runs: 3 }],
    data: '9c1e',
    metric: 'exact_match',
    rows: [row('fast-1', 0.9, 1100), row('slow-2', 0.7, 1040), row(BASE, 0.0, 1000), row('new-3', 0.5, null, 0)],
    games: 12,
    ...over
  };
}

describe('figures with their intervals', () => {
  it('shows shares as percentages and the rest with 3 digits', () => {
    expect(formatFigure('exact_match', { value: 0.98, low: 0.93, high: 1.0 })).toBe('98% [93–100]');
    expect(formatFigure('exact_match', { value: 0, low: 0, high: 0.06 }, false)).toBe('0%');
    expect(formatFigure('chrf', { value: 97.1, low: 94.2, high: 99.3 })).toBe('97.1 [94.2–99.3]');
    expect(formatFigure('perplexity', { value: 0.5, low: 0.4, high: 0.6 })).toBe('0.5 [0.4–0.6]');
    expect(formatFigure('acc', { value: 0.25, low: null, high: null })).toBe('25%');
    expect(formatFigure('exact_match', { value: null, low: null, high: null })).toBe('–');
    expect(formatFigure('exact_match', null)).toBe('–');
  });

  it('tells shares from other figures', () => {
    expect(isShare('regex:^\\d+$', { value: 1, low: 0.9, high: 1 })).toBe(true);
    expect(isShare('answer_length', { value: 0.5, low: 0.5, high: 0.5 })).toBe(false);
    expect(isShare('my_fn', { value: 3, low: 2, high: 4 })).toBe(false);
    expect([
      lowerIsBetter('perplexity'),
      lowerIsBetter('mean_loss'),
      lowerIsBetter('chrf'),
      lowerIsBetter(null)
    ]).toEqual([true, true, false, false]);
  });

  it('writes the sidebar line of the latest evaluation', () => {
    expect(evalLine(LATEST)).toBe('exact_match 98% [93–100] · base 0%');
    expect(evalLine({ ...LATEST, base: null })).toBe('exact_match 98% [93–100]');
    expect(evalLine({ ...LATEST, own: null })).toBe('exact_match no figure of this run · base 0%');
    expect(evalLine(null)).toBe('');
    expect(evalTitle(LATEST)).toBe(
      'Latest evaluation, 2026-12-08 01:23 UTC: eval split of demo (60 examples), 95% intervals in brackets'
    );
    expect(shortTime('not a time')).toBe('not a time');
    expect(dataText({ name: 'lm_eval:arc_easy', n: 1 })).toBe('lm_eval:arc_easy (1 example)');
    expect(dataText({ name: null, n: null })).toBe('unnamed data');
    expect(evalTitle({ ...LATEST, time: null })).toMatch(/^Latest evaluation: eval split of demo \(60 examples\),/);
    expect(evalLine({ ...LATEST, metric: null })).toBe('metric 98% [93–100] · base 0%');
  });

  it("tables a run's evaluations, newest first, its own column beside the base's", () => {
    const older = record({ id: 'ev-1', time: '2026-12-07T09:00:00+00:00', metrics: ['exact_match'] });
    expect(evalRows([older, record()], TUNED)).toEqual([
      ['2026-12-08 01:23', 'eval split of demo (60 examples)', 'exact_match', '98% [93–100]', '0% [0–6]'],
      ['2026-12-08 01:23', 'eval split of demo (60 examples)', 'chrf', '97.1 [94.2–99.3]', '21.4 [18–24.9]'],
      ['2026-12-07 09:00', 'eval split of demo (60 examples)', 'exact_match', '98% [93–100]', '0% [0–6]']
    ]);
    expect(evalRows(undefined, TUNED)).toEqual([]);
  });

  it('names the columns when none is the run itself', () => {
    const rec = record({
      metrics: ['exact_match'],
      columns: { [BASE]: { run: null }, a: { run: 'a-1' }, b: { run: null } },
      figures: {
        [BASE]: { exact_match: { value: 0, low: 0, high: 0 } },
        a: { exact_match: { value: 0.5, low: 0.4, high: 0.6 } },
        b: { exact_match: { value: 0.25, low: 0.2, high: 0.3 } }
      }
    });
    expect(evalRows([rec], TUNED)[0][3]).toBe('a: 50% [40–60]; b: 25% [20–30]');
    expect(evalRows([rec], 'a-1')[0][3]).toBe('50% [40–60]');
  });
});

describe('the leaderboard', () => {
  it('asks for what is set', () => {
    expect(boardEndpoint({})).toBe('board');
    expect(boardEndpoint({ base: 'org/model x', data: null, metric: '' })).toBe('board?base=org%2Fmodel+x');
    expect(boardEndpoint({ base: 'b', data: '9c1e', metric: 'regex:^\\d+$' })).toBe(
      'board?base=b&data=9c1e&metric=regex%3A%5E%5Cd%2B%24'
    );
  });

  it('writes ratings, names and the summary', () => {
    expect(formatRating({ value: 1043.4, low: 1002.2, high: 1089.6 })).toBe('1043 [1002–1090]');
    expect(formatRating(null)).toBe('–');
    expect(boardName(row(BASE, 0, 1000))).toBe('base model');
    expect(boardName({ ...row('x-1', 0, 1000), name: '' })).toBe('x-1');
    expect(boardSummary(board())).toBe(
      '3 runs · 12 games (blind votes and judge verdicts) · ratings: Bradley–Terry on an Elo scale, base = 1000'
    );
  });

  it('follows new runs, renames and evaluations, not training steps', () => {
    const runs = [summary({ id: 'a-1', eval: LATEST }), summary({ id: 'b-2' })];
    const key = boardKey(runs);
    expect(boardKey([runs[1], runs[0], runs[0]])).toBe(key); // the active runs are in the page too
    expect(boardKey([{ ...runs[0], step: 3, loss: 1.5, spark: [1] }, runs[1]])).toBe(key);
    expect(boardKey([{ ...runs[0], eval: { ...LATEST, id: 'ev-2' } }, runs[1]])).not.toBe(key);
    expect(boardKey([runs[0], { ...runs[1], name: 'renamed' }])).not.toBe(key);
    expect(boardKey([...runs, summary({ id: 'c-3' })])).not.toBe(key);
  });

  it('sorts by rating or metric, rows without a value last', () => {
    const rows = board().rows;
    expect(sortRows(rows, 'rating').map(r => r.run)).toEqual(['fast-1', 'slow-2', BASE, 'new-3']);
    expect(sortRows(rows, 'rating', false).map(r => r.run)).toEqual([BASE, 'slow-2', 'fast-1', 'new-3']);
    expect(sortRows(rows, 'metric', false).map(r => r.run)).toEqual([BASE, 'new-3', 'slow-2', 'fast-1']);
    const noMetric = { ...row('z-9', 0, 900), metric: null };
    expect(sortRows([noMetric, ...rows], 'metric').map(r => r.run)).toEqual(['fast-1', 'slow-2', 'new-3', BASE, 'z-9']);
  });

  it('loads the board, follows the selectors and keeps at most two runs picked', async () => {
    const asked: string[] = [];
    const fetch: Fetcher = <T>(endPoint: string): Promise<T> => {
      asked.push(endPoint);
      return Promise.resolve(board() as unknown as T);
    };
    const model = new BoardModel(fetch);
    let changes = 0;
    model.changed.connect(() => changes++);
    await model.load();
    expect(model.board?.rows.length).toBe(4);
    expect([model.error, model.loading, model.pair]).toEqual([null, false, null]);
    expect(model.toggle(BASE)).toBe(false);
    model.toggle('fast-1');
    model.toggle('slow-2');
    expect(model.pair).toEqual(['fast-1', 'slow-2']);
    model.toggle('new-3'); // a third pick replaces the first
    expect(model.selected).toEqual(['slow-2', 'new-3']);
    model.toggle('new-3');
    expect(model.selected).toEqual(['slow-2']);
    await model.setMetric('chrf');
    await model.setData('other-set');
    await model.setBase('other');
    await model.load();
    expect(asked).toEqual([
      'board',
      'board?base=tiny&data=9c1e&metric=chrf',
      'board?base=tiny&data=other-set',
      'board?base=other',
      'board?base=other'
    ]);
    expect(changes).toBeGreaterThanOrEqual(10);
  });

  it('drops picks that left the board and keeps the board when a request fails', async () => {
    let reply: IBoard | Error = board();
    const fetch: Fetcher = <T>(): Promise<T> =>
      reply instanceof Error ? Promise.reject(reply) : Promise.resolve(reply as unknown as T);
    const model = new BoardModel(fetch);
    await model.load();
    model.toggle('fast-1');
    model.toggle('slow-2');
    reply = board({ rows: [row('slow-2', 0.7, 1040), row(BASE, 0, 1000)] });
    await model.load();
    expect(model.selected).toEqual(['slow-2']);
    reply = new Error('server down');
    await model.load();
    expect(model.error?.message).toBe('server down');
    expect(model.board?.rows.length).toBe(2);
  });

  it('keeps the newest reply when an older one arrives late', async () => {
    const pending: Array<(b: IBoard) => void> = [];
    const fetch: Fetcher = <T>(): Promise<T> =>
      new Promise<T>(resolve => pending.push(b => resolve(b as unknown as T)));
    const model = new BoardModel(fetch);
    const first = model.load({ base: 'tiny' });
    const second = model.load({ base: 'other' });
    pending[1](board({ base: 'other' }));
    await second;
    pending[0](board({ base: 'tiny' }));
    await first;
    expect(model.board?.base).toBe('other');
  });
});

describe('the blind A/B notebook', () => {
  it('holds one cell that opens the Studio on the two runs', () => {
    expect(blindAbSource('fast-1', 'slow-2')).toBe("from lora_nb import Studio\nStudio.blind_ab('fast-1', 'slow-2')");
    expect(pyString("it's a\\b\n")).toBe("'it\\'s a\\\\b\\n'");
    const nb = blindAbNotebook('a', 'b') as { cells: Array<{ cell_type: string; source: string; outputs: unknown[] }> };
    expect(nb.cells).toHaveLength(1);
    expect(nb.cells[0]).toMatchObject({ cell_type: 'code', source: blindAbSource('a', 'b'), outputs: [] });
  });

  it('is saved under a free name in the folder shown', async () => {
    const saved: Array<[string, Partial<Contents.IModel>]> = [];
    const contents = {
      get: (dir: string) =>
        Promise.resolve({ content: [{ name: 'blind_ab.ipynb' }, { name: 'blind_ab-1.ipynb' }], path: dir }),
      save: (path: string, options: Partial<Contents.IModel>) => {
        saved.push([path, options]);
        return Promise.resolve({});
      }
    } as unknown as Contents.IManager;
    expect(await createBlindAb(contents, 'work/', 'a-1', 'b-2')).toBe('work/blind_ab-2.ipynb');
    expect(saved[0][1]).toMatchObject({ type: 'notebook', format: 'json', content: blindAbNotebook('a-1', 'b-2') });
  });
});
