/**
 * The JSON shapes served by lora_nb's server extension under `<base_url>/lora-nb/`,
 * and the error type thrown when a request fails. No JupyterLab imports: unit-testable.
 */

export type RunStatus =
  | 'created'
  | 'running'
  | 'stale'
  | 'stopped'
  | 'completed'
  | 'failed'
  | 'corrupt';

export interface IRunSummary {
  id: string;
  name: string;
  status: RunStatus | string;
  active: boolean;
  base_model: string | null;
  step: number | null;
  total_steps: number | null;
  loss: number | null;
  eval_loss: number | null;
  eta_s: number | null;
  tokens_per_s: number | null;
  created: string | null;
  updated: string | null;
  adapter: boolean;
  stop_requested: boolean;
  metrics_corrupt_lines: number;
  error: string | null;
  spark: Array<number | null>;
}

export interface IRunsPage {
  root: string;
  exists: boolean;
  total: number;
  offset: number;
  limit: number;
  active: IRunSummary[];
  runs: IRunSummary[];
}

/** One metric series: `[step, value]` pairs. */
export type Series = Array<[number, number | null]>;

export interface IMetrics {
  series: { [name: string]: Series | undefined };
  points: number;
  downsampled: boolean;
  corrupt_lines: number[];
  partial: boolean;
}

export interface ISample {
  step: number | null;
  prompt: string;
  base: string;
  adapter: string;
}

export interface IVotes {
  n: number;
  wins: { [side: string]: number };
  ties: number;
  win_rate: number | null;
  interval: [number, number] | null;
  a: string;
  b: string;
}

export type JSONValue =
  | string
  | number
  | boolean
  | null
  | JSONValue[]
  | { [key: string]: JSONValue };

export interface IRunInfo {
  [key: string]: JSONValue | undefined;
  settings?: { [key: string]: JSONValue };
}

export interface IRunDetail {
  summary: IRunSummary;
  info: IRunInfo | null;
  metrics: IMetrics | null;
  samples: ISample[];
  votes: IVotes | null;
  code: string | null;
}

export interface IStopReply {
  summary: IRunSummary;
}

export interface ITemplate {
  name: string;
  content: { [key: string]: JSONValue };
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
export function errorFromResponse(
  status: number,
  statusText: string,
  body: unknown
): ApiError {
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
    hint =
      'Is the lora_nb server extension enabled? Run `jupyter server extension list`.';
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
