/**
 * The JSON shapes served by lora_nb's server extension under `<base_url>/lora-nb/`,
 * and the error type thrown when a request fails. No JupyterLab imports: unit-testable.
 *
 * The contract is `lora_nb/lab/api.schema.json` (JSON Schema, shipped in the wheel): every type here mirrors one of
 * its `$defs`, named in the comment. The jest tests check committed server replies against it, and
 * tests/test_server.py checks a real server against it; change the schema, these types and the fixtures together.
 */

/** `RunStatus`. */
export type RunStatus =
  'created' | 'running' | 'stale' | 'crashed' | 'stopped' | 'interrupted' | 'completed' | 'failed' | 'corrupt';

/**
 * `RunSummary`: a run's row. A run whose run.json can't be read has status `'corrupt'` and only `id`, `status`,
 * `active` (false), `error` and `spark` ([]); the optional fields are absent then, and present otherwise.
 */
export interface IRunSummary {
  id: string;
  name?: string | null;
  status: RunStatus;
  active: boolean;
  base_model?: string | null;
  step?: number | null;
  total_steps?: number | null;
  loss?: number | null;
  eval_loss?: number | null;
  eta_s?: number | null;
  tokens_per_s?: number | null;
  created?: string | null;
  updated?: string | null;
  adapter?: boolean;
  stop_requested?: boolean;
  metrics_corrupt_lines?: number;
  error: string | null;
  /** The last finite losses. */
  spark: number[];
  /** The latest evaluation stored with the run (its first metric); null or absent without one. */
  eval?: IEvalSummary | null;
}

/** `Figure`: one metric's mean over an eval set with its 95 % bootstrap interval. */
export interface IFigure {
  value: number | null;
  low: number | null;
  high: number | null;
  /** Examples scored. */
  n?: number | null;
  /** Examples whose metric raised (left out of the mean). */
  errors?: number | null;
}

/** `EvalData`: what was evaluated; records with the same `fingerprint` and metric are comparable. */
export interface IEvalData {
  name: string | null;
  fingerprint: string | null;
  n: number | null;
}

/** `EvalSummary`: a run's latest evaluation in its row: the first metric, the run's figure and the base's. */
export interface IEvalSummary {
  id: string | null;
  /** ISO 8601. */
  time: string | null;
  data: IEvalData;
  metric: string | null;
  own: IFigure | null;
  base: IFigure | null;
}

/** `EvalRecord`: one line of the run's evals.jsonl (without the per-example rows). */
export interface IEvalRecord {
  id?: string;
  time?: string;
  /** `'metrics'` or `'lm_eval'`. */
  kind?: string;
  data: IEvalData;
  metrics: string[];
  settings?: { [key: string]: JSONValue };
  seed?: number | null;
  base?: { model: string | null; revision?: string | null };
  /** Column (adapter name, `__base__` for the base) → the run it came from. */
  columns?: { [column: string]: { run: string | null; adapter?: string | null } };
  /** Column → metric → figure. */
  figures: { [column: string]: { [metric: string]: IFigure } };
  examples?: string | null;
}

/** `RunsPage`: `GET runs?offset=&limit=`. */
export interface IRunsPage {
  root: string;
  exists: boolean;
  total: number;
  offset: number;
  limit: number;
  active: IRunSummary[];
  runs: IRunSummary[];
}

/** `RenameReply`: `PATCH runs/<id>` with `{name}`: the summary under the new name (the id stays). */
export interface IRenameReply {
  summary: IRunSummary;
}

/** `DeleteReply`: `DELETE runs/<id>`: the run whose folder was removed. */
export interface IDeleteReply {
  deleted: string;
}

/** `Series`: one metric as `[step, value]` pairs, finite values only. */
export type Series = Array<[number, number]>;

export type SeriesName = 'loss' | 'eval_loss' | 'learning_rate' | 'grad_norm' | 'tokens_per_s';

/** `Metrics`. */
export interface IMetrics {
  series: { [name in SeriesName]?: Series };
  /** Records in metrics.jsonl. */
  points: number;
  downsampled: boolean;
  /** 1-based numbers of the lines that are not JSON. */
  corrupt_lines: number[];
  /** The last line is still being written. */
  partial: boolean;
}

/** `Sample`: a probe generation during training. */
export interface ISample {
  step: number | null;
  prompt: string;
  base: string;
  adapter: string;
  time?: number;
}

/**
 * `Tally`: blind A/B votes between the adapters named `a` and `b`. `wins` is keyed by those NAMES
 * (`{slow: 1, fast: 3}`), not by 'A'/'B': read `wins[a]` and `wins[b]` (see `format.votesText`).
 */
export interface ITally {
  a: string;
  b: string;
  n: number;
  wins: { [adapter: string]: number };
  ties: number;
  /** Votes that found both answers bad (count half, like ties); absent in older runs. */
  both_bad?: number;
  /** `b`'s share, ties and 'both bad' counting half; null without votes. */
  win_rate: number | null;
  /** 95% Wilson interval of `win_rate`. */
  interval: [number, number];
}

/** `Votes`: the pair blind-tested last, and the other pairs. */
export interface IVotes extends ITally {
  others: ITally[];
}

export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };

/** `Judges`: a model's judgments of the last pair judged in the run, and its agreement with people's votes. */
export interface IJudges {
  a: string;
  b: string;
  /** Valid judgments. */
  n: number;
  wins: { [adapter: string]: number };
  ties: number;
  /** Answers that could not be read as a verdict: never a win. */
  invalid: number;
  win_rate: number | null;
  interval: [number, number];
  /** Who judged, in words. */
  judge: string;
  /** Pairs both the judge and a person decided, and how many they agreed on. */
  agreement: { n: number; agree: number; rate: number | null };
}

/** `RunInfo`: run.json as the engine wrote it (`{}` when it can't be read). */
export interface IRunInfo {
  [key: string]: JSONValue | undefined;
  name?: string | null;
  base_model?: string | null;
  settings?: { [key: string]: JSONValue };
}

/** `RunDetail`: `GET runs/<id>`. */
export interface IRunDetail {
  summary: IRunSummary;
  info: IRunInfo;
  metrics: IMetrics;
  samples: ISample[];
  votes: IVotes | null;
  judges: IJudges | null;
  /** A cell that loads the final adapter; null without one. */
  code: string | null;
  /** The run's evaluations, oldest first (at most the last 20); absent from older servers. */
  evals?: IEvalRecord[];
}

/** The column name of the base model in evaluations, votes and the leaderboard. */
export const BASE = '__base__';

/** `BoardRow`: one run (or the base: `run: '__base__'`, `name` its model) on the leaderboard. */
export interface IBoardRow {
  run: string;
  name: string;
  /** The run's latest figure on the chosen eval set and metric; null when it has none. */
  metric: IFigure | null;
  /** `Rating`: Bradley–Terry on the Elo scale (base = 1000) with its 95 % bootstrap interval; null without games. */
  rating: { value: number; low: number; high: number } | null;
  /** Blind votes and judge verdicts the run took part in. */
  games: number;
}

/** `Board`: `GET board?base=&data=&metric=`, the leaderboard of the runs on one base. */
export interface IBoard {
  bases: Array<{ model: string; runs: number }>;
  base: string | null;
  sets: Array<{ fingerprint: string; name: string | null; n: number | null; metrics: string[]; runs: number }>;
  data: string | null;
  metric: string | null;
  /** Sorted by rating, then metric. */
  rows: IBoardRow[];
  games: number;
}

/** `StopReply`: `POST runs/<id>/stop`. */
export interface IStopReply {
  summary: IRunSummary;
}

/** `Template`: `GET template`, the quickstart notebook. */
export interface ITemplate {
  name: string;
  content: { [key: string]: JSONValue };
}

/** `Error`: the body of a refused request (400, 404, 409). */
export interface IErrorReply {
  error: string;
  hint: string | null;
}

/** The function models use to reach the server: `requestAPI` in the app, a fake in tests. */
export type Fetcher = <T>(endPoint: string, init?: RequestInit) => Promise<T>;

/** A failed request: `message` is the server's `error`, `hint` what to do about it. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly hint: string | null = null
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Build the error for a non-2xx reply from its status and (possibly non-JSON) body. */
export function errorFromResponse(status: number, statusText: string, body: unknown): ApiError {
  let message = '';
  let hint: string | null = null;
  if (body !== null && typeof body === 'object') {
    const rec = body as { [key: string]: unknown };
    if (typeof rec.error === 'string') {
      message = rec.error;
    } else if (typeof rec.message === 'string') {
      message = rec.message;
    }
    if (typeof rec.hint === 'string' && rec.hint) {
      hint = rec.hint;
    }
  } else if (typeof body === 'string' && body.trim() && body.length < 300) {
    message = body.trim();
  }
  if (!message) {
    message = `HTTP ${status}${statusText ? ' ' + statusText : ''}`;
  }
  if (status === 404 && !hint && message.startsWith('HTTP 404')) {
    hint = 'Is the lora_nb server extension enabled? Run `jupyter server extension list`.';
  }
  return new ApiError(message, status, hint);
}

/** Parse a reply body: JSON when possible, else the raw text. */
export function parseBody(text: string): unknown {
  if (!text) {
    return null;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** A one-line description of any thrown value, with the hint when there is one. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    return err.hint ? `${err.message} (${err.hint})` : err.message;
  }
  if (err instanceof Error) {
    return err.message;
  }
  return String(err);
}
