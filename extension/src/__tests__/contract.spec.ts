/**
 * The contract with the server: replies of a real server (fixtures written by tests/test_server.py, which fails when
 * they no longer match it) are checked against lora_nb/lab/api.schema.json and rendered by the extension's code.
 */
import * as fs from 'fs';
import * as path from 'path';

import Ajv2020 from 'ajv/dist/2020';

import type {
  Fetcher,
  IBoard,
  IDeleteReply,
  IRenameReply,
  IRunDetail,
  IRunsPage,
  IStopReply,
  ITally,
  ITemplate
} from '../api';
import { BASE, describeError, errorFromResponse } from '../api';
import { BoardModel } from '../board';
import { chartGeometry } from '../chart';
import { boardName, boardSummary, evalLine, evalRows, evalTitle, boardRating, formatFigure } from '../evals';
import {
  corruptWarning,
  deleteBlocked,
  flattenSettings,
  judgesText,
  metricsLine,
  pagerText,
  runLabel,
  statusBarText,
  votesText
} from '../format';
import { RunModel, RunsModel } from '../model';

const SCHEMA_FILE = path.resolve(__dirname, '../../../lora_nb/lab/api.schema.json');
const FIXTURES = path.join(__dirname, 'fixtures');

interface IExchange {
  /** `VERB /path?query` as sent. */
  request: string;
  /** The `x-routes` key. */
  route: string;
  status: number;
  body: unknown;
}

interface ISchema {
  $id: string;
  'x-routes': { [route: string]: { [status: string]: string } };
}

const schema = JSON.parse(fs.readFileSync(SCHEMA_FILE, 'utf-8')) as ISchema;
const fixtures = new Map<string, IExchange>(
  fs
    .readdirSync(FIXTURES)
    .filter(f => f.endsWith('.json'))
    .sort()
    .map(f => [f.replace(/\.json$/, ''), JSON.parse(fs.readFileSync(path.join(FIXTURES, f), 'utf-8')) as IExchange])
);

// strict: a schema ajv would have to guess about fails to compile (strictRequired is off: `else` of RunSummary
// requires properties declared beside it, as JSON Schema allows)
const ajv = new Ajv2020({ strict: true, strictRequired: false, allowUnionTypes: true, allErrors: true });
ajv.addKeyword('x-routes');
ajv.addSchema(schema);

function fixture(name: string): IExchange {
  const ex = fixtures.get(name);
  if (!ex) {
    throw new Error(`no fixture ${name}.json: run LORA_NB_WRITE_FIXTURES=1 pytest tests/test_server.py -k fixtures`);
  }
  return ex;
}

/** The reply body of fixture `name`, as the type the schema says it has. */
function body<T>(name: string): T {
  return fixture(name).body as T;
}

/** Every vote tally in `o`: objects with `wins`. */
function tallies(o: unknown): ITally[] {
  if (Array.isArray(o)) {
    return o.flatMap(tallies);
  }
  if (o === null || typeof o !== 'object') {
    return [];
  }
  const rec = o as { [key: string]: unknown };
  const own = 'wins' in rec ? [rec as unknown as ITally] : [];
  return [...own, ...Object.values(rec).flatMap(tallies)];
}

/** A server that answers with the fixtures: the body for 2xx, the error the extension builds for the others. */
const fixtureServer: Fetcher = <T>(endPoint: string, init?: RequestInit): Promise<T> => {
  const request = `${init?.method ?? 'GET'} /lora-nb/${endPoint}`;
  const ex = [...fixtures.values()].find(e => e.request === request);
  if (!ex) {
    return Promise.reject(new Error(`no fixture for ${request}`));
  }
  return ex.status < 300 ? Promise.resolve(ex.body as T) : Promise.reject(errorFromResponse(ex.status, '', ex.body));
};

describe('the fixtures and the schema', () => {
  it('has fixtures', () => {
    expect(fixtures.size).toBeGreaterThan(10);
  });

  it.each([...fixtures.keys()])('%s matches the schema for its route and status', name => {
    const ex = fixture(name);
    const ref = schema['x-routes'][ex.route]?.[String(ex.status)];
    expect(ref).toBeDefined();
    const validate = ajv.getSchema(`${schema.$id}${ref}`);
    expect(validate).toBeDefined();
    const ok = validate?.(ex.body);
    expect(validate?.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('holds a reply for every route and status in x-routes', () => {
    const listed = Object.entries(schema['x-routes']).flatMap(([route, answers]) =>
      Object.keys(answers).map(status => `${route} ${status}`)
    );
    const have = new Set([...fixtures.values()].map(e => `${e.route} ${e.status}`));
    expect(listed.filter(r => !have.has(r))).toEqual([]);
  });

  it('keys every tally by its two adapter names (what JSON Schema cannot say)', () => {
    const all = [...fixtures.values()].flatMap(e => tallies(e.body));
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const t of all) {
      expect(Object.keys(t.wins).sort()).toEqual([t.a, t.b].sort());
    }
  });

  it('rejects a reply that breaks the contract', () => {
    const validate = ajv.getSchema(`${schema.$id}#/$defs/RunDetail`);
    const tuned = body<IRunDetail>('run-tuned');
    expect(validate?.(tuned)).toBe(true);
    const votes = tuned.votes as NonNullable<IRunDetail['votes']>;
    expect(validate?.({ ...tuned, votes: { ...votes, wins: { slow: '1', fast: 3 } } })).toBe(false);
    expect(validate?.({ ...tuned, votes: { ...votes, a: undefined } })).toBe(false);
    expect(validate?.({ ...tuned, summary: { ...tuned.summary, step: undefined } })).toBe(false);
  });
});

describe('rendering the fixtures', () => {
  it('counts blind votes by adapter name', () => {
    const votes = body<IRunDetail>('run-tuned').votes;
    expect(votes?.wins).toEqual({ slow: 1, fast: 3 });
    expect(votesText(votes)).toBe('fast preferred in 70% of 5 votes (95% interval 30%–93%): fast 3, slow 1, ties 1.');
    expect(votesText(body<IRunDetail>('run-live').votes)).toBe('No blind votes yet.');
    // the base's column (`__base__`) is called the base
    expect(votesText(body<IRunDetail>('run-damaged').votes)).toBe(
      'damaged preferred in 67% of 3 votes (95% interval 21%–94%): damaged 2, base 1, ties 0.'
    );
    expect(votesText({ ...(votes as NonNullable<typeof votes>), n: 6, both_bad: 1 })).toMatch(
      /, both bad 1 \(counted half, as ties are\)\.$/
    );
  });

  it('describes runs in the list and the status bar', () => {
    const page = body<IRunsPage>('runs');
    expect(page.runs.map(r => r.name)).toEqual(['live', 'damaged', 'tuned']);
    expect(pagerText(page.offset, page.runs.length, page.total)).toBe('1–3 of 4');
    const [live, damaged, tuned] = page.runs;
    expect(metricsLine(live, true)).toBe('step 15/60 · loss 2 · 680 tok/s · ETA 0:45');
    expect(metricsLine(tuned)).toBe('step 12/12 · loss 1 · eval 1.1');
    expect(statusBarText(page.active)).toBe(`LoRA ${live.id} · step 15/60 · loss 2 · ETA 0:45`);
    expect(corruptWarning(damaged)).toBe('RuntimeError: CUDA error: out of memory');
    expect(corruptWarning(tuned)).toBeNull();
    const torn = body<IRunsPage>('runs-page2').runs[0];
    expect(torn.status).toBe('corrupt');
    expect(corruptWarning(torn)).toMatch(/^run\.json of torn can't be read/);
    expect(metricsLine(torn)).toBe('');
  });

  it('draws the loss chart and lists the settings', () => {
    const tuned = body<IRunDetail>('run-tuned');
    const geo = chartGeometry(tuned.metrics.series);
    expect([geo.lossPoints, geo.evalDots.length, geo.lrPath !== '']).toEqual([12, 2, true]);
    expect(flattenSettings(tuned.info.settings)).toEqual(
      expect.arrayContaining([
        ['model.load_in_4bit', 'true'],
        ['lora.r', '8'],
        ['lora.target_modules', '["q_proj","v_proj"]']
      ])
    );
    expect(tuned.code).toContain("load(lm.model, '/srv/runs/tuned-");
    const damaged = body<IRunDetail>('run-damaged');
    expect(chartGeometry(damaged.metrics.series).lossPoints).toBe(5);
    expect([damaged.metrics.corrupt_lines, damaged.metrics.partial]).toEqual([[7], true]);
    expect(damaged.samples.map(s => s.step)).toEqual([null, 5]);
    expect(chartGeometry(body<IRunDetail>('run-torn').metrics.series).empty).toBe(true);
  });

  it('shows refused requests with the server message and hint', () => {
    const e = errorFromResponse(404, 'Not Found', fixture('run-unknown').body);
    expect(describeError(e)).toBe("No run 'no-such-run' under /srv/runs (`list_runs()` shows the runs there.)");
    expect(errorFromResponse(409, 'Conflict', fixture('stop-done').body).message).toMatch(/nothing to stop/);
    expect(body<IStopReply>('stop-live').summary.stop_requested).toBe(true);
    expect(body<ITemplate>('template').name).toBe('lora_nb_quickstart.ipynb');
  });

  it('says what a judge found and how often it agreed with people', () => {
    const tuned = body<IRunDetail>('run-tuned');
    expect(judgesText(tuned.judges)).toBe(
      'Judge qwen2.5-7b-instruct at http://127.0.0.1:8000/v1: fast preferred in 50% of 4 judgments (1 answer it ' +
        "gave could not be read); fast 2, slow 2, ties 0. It agrees with people's votes on 3 of 4 pairs (75%)."
    );
    expect(judgesText(body<IRunDetail>('run-live').judges)).toBe('');
  });

  it('renames and deletes runs, never a training one', () => {
    const renamed = body<IRenameReply>('rename-tuned').summary;
    expect(runLabel(renamed)).toBe('tuned, lr 2e-4 (tuned-20261123-101500-0000)');
    expect(errorFromResponse(400, 'Bad Request', fixture('rename-empty').body).message).toMatch(/non-empty/);
    expect(body<IDeleteReply>('delete-damaged').deleted).toBe('damaged-20261123-101500-0000');
    const live = body<IRunsPage>('runs').runs.find(r => r.name === 'live');
    expect(live && deleteBlocked(live)).toBe('Stop the run before deleting it');
    expect(deleteBlocked(renamed)).toBeNull();
    expect(describeError(errorFromResponse(409, 'Conflict', fixture('delete-live').body))).toMatch(/Stop it first/);
  });
});

describe('evaluations and the leaderboard on the fixtures', () => {
  it("shows each run's latest evaluation in its row", () => {
    const [live, damaged, tuned] = body<IRunsPage>('runs').runs;
    expect(live.eval).toBeNull();
    expect(evalLine(live.eval)).toBe('');
    expect(evalLine(tuned.eval)).toBe('exact_match 88% [76–98] · base 10%');
    expect(evalLine(damaged.eval)).toBe('exact_match 35% [23–45] · base 10%');
    expect(tuned.eval && evalTitle(tuned.eval)).toBe(
      'Latest evaluation, 2026-11-23 10:20 UTC: eval split of types (40 examples), 95% intervals in brackets'
    );
    expect(body<IRunsPage>('runs-page2').runs[0].eval).toBeUndefined(); // a corrupt run has no eval field
  });

  it("tables a run's evaluations, its own column beside the base's", () => {
    const tuned = body<IRunDetail>('run-tuned');
    const rows = evalRows(tuned.evals, tuned.summary.id);
    expect(rows.length).toBe(2 * (tuned.evals?.length ?? 0));
    expect(rows[0]).toEqual([
      '2026-11-23 10:20',
      'eval split of types (40 examples)',
      'exact_match',
      '88% [76–98]',
      '10% [0–20]'
    ]);
    expect(rows.at(-1)).toEqual([
      '2026-11-23 10:20',
      'eval split of types (40 examples)',
      'chrf',
      '90% [78–100]',
      '30% [18–40]'
    ]);
    expect(evalRows(body<IRunDetail>('run-live').evals, 'live')).toEqual([]);
  });

  it('ranks the runs with their figures and ratings', () => {
    const board = body<IBoard>('board');
    expect(
      board.rows.map(r => [boardName(r), formatFigure(board.metric ?? '', r.metric), boardRating(r), r.games])
    ).toEqual([
      ['tuned', '88% [76–98]', '1241 [903–1579]', 8],
      ['damaged', '35% [23–45]', '1107 [804–1411]', 9],
      ['base model', '10% [0–20]', '1000 (anchor)', 5]
    ]);
    expect(boardSummary(board)).toBe(
      '2 runs · 11 games (blind votes and judge verdicts) · ratings: Bradley–Terry on an Elo scale, base = 1000'
    );
    expect(board.rows.find(r => r.run === BASE)?.name).toBe(board.base);
  });

  it('loads the board, another metric, and keeps it when a metric is refused', async () => {
    const model = new BoardModel(fixtureServer);
    await model.load();
    expect([model.board?.metric, model.error]).toEqual(['exact_match', null]);
    model.toggle('tuned-20261123-101500-0000');
    model.toggle('damaged-20261123-101500-0000');
    await model.load({ data: 'fp-types-40', metric: 'chrf' });
    expect(model.board?.metric).toBe('chrf');
    expect(model.pair).toEqual(['tuned-20261123-101500-0000', 'damaged-20261123-101500-0000']);
    await model.load({ metric: 'bleu' });
    expect(describeError(model.error)).toBe(
      "Eval set 'fp-types-40' has no figures for metric 'bleu' (Its metrics: exact_match, chrf.)"
    );
    expect(model.board?.metric).toBe('chrf');
  });
});

describe('the models on the fixtures', () => {
  it('pages through the runs list', async () => {
    const model = new RunsModel({ fetch: fixtureServer, limit: 3, isHidden: () => false });
    await model.refresh();
    expect(model.error).toBeNull();
    expect(model.runs.map(r => r.name)).toEqual(['live', 'damaged', 'tuned']);
    expect(model.active.map(r => r.name)).toEqual(['live']);
    expect(model.hasNext).toBe(true);
    await model.nextPage();
    expect(model.runs.map(r => r.id)).toEqual(['torn']);
    model.dispose();
  });

  it('loads a run and keeps a refused request as its error', async () => {
    const tuned = body<IRunDetail>('run-tuned').summary.id;
    const model = new RunModel(tuned, { fetch: fixtureServer, isHidden: () => false });
    await model.refresh();
    expect(votesText(model.detail?.votes ?? null)).toMatch(/: fast 3, slow 1, ties 1\.$/);
    model.dispose();
    const missing = new RunModel('no-such-run', { fetch: fixtureServer, isHidden: () => false });
    await missing.refresh();
    expect(missing.detail).toBeNull();
    expect(missing.error?.message).toBe("No run 'no-such-run' under /srv/runs");
    missing.dispose();
  });
});
