/**
 * The leaderboard's model (no DOM): the board the server ranks for a base, an eval set and a metric, the two runs
 * picked for a blind A/B, and the notebook that starts it in the Studio.
 */

import type { Contents } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import type { Fetcher, IBoard, IBoardRow, IRunSummary, JSONValue } from './api';
import { BASE } from './api';
import { freeName, joinPath } from './quickstart';

/** What the board shows; an absent or empty field lets the server choose (the base and eval set with most runs). */
export interface IBoardQuery {
  base?: string | null;
  data?: string | null;
  metric?: string | null;
}

/** `board?base=…&data=…&metric=…` with the fields that are set. */
export function boardEndpoint(q: IBoardQuery): string {
  const params = new URLSearchParams();
  for (const key of ['base', 'data', 'metric'] as const) {
    const v = q[key];
    if (v) {
      params.set(key, v);
    }
  }
  const text = params.toString();
  return text ? `board?${text}` : 'board';
}

/** A Python string literal of `text` in single quotes. */
export function pyString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
}

/** The cell that opens the Studio on a blind A/B between runs `a` and `b`. */
export function blindAbSource(a: string, b: string): string {
  return `from lora_nb import Studio\nStudio.blind_ab(${pyString(a)}, ${pyString(b)})`;
}

/** An nbformat-4 notebook whose one code cell is `blindAbSource(a, b)` (not run: the person runs it). */
export function blindAbNotebook(a: string, b: string): { [key: string]: JSONValue } {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' },
      language_info: { name: 'python' }
    },
    cells: [
      {
        cell_type: 'code',
        id: 'lora-nb-blind-ab',
        metadata: {},
        source: blindAbSource(a, b),
        outputs: [],
        execution_count: null
      }
    ]
  };
}

/**
 * Save the blind A/B notebook of runs `a` and `b` under a free name in `dir` (as the quickstart is saved).
 * @returns the new notebook's path
 */
export async function createBlindAb(contents: Contents.IManager, dir: string, a: string, b: string): Promise<string> {
  const listing = await contents.get(dir, { content: true });
  const taken = new Set<string>(
    Array.isArray(listing.content) ? (listing.content as Contents.IModel[]).map(m => m.name) : []
  );
  const path = joinPath(dir, freeName('blind_ab.ipynb', taken));
  await contents.save(path, { type: 'notebook', format: 'json', content: blindAbNotebook(a, b) });
  return path;
}

/**
 * What of the runs list the board depends on: the runs, their bases, names and latest evaluations (a new run, a
 * rename or a new evaluation changes it; a training step does not).
 */
export function boardKey(runs: IRunSummary[]): string {
  const parts = runs.map(r => JSON.stringify([r.id, r.base_model ?? null, r.name ?? null, r.eval?.id ?? null]));
  return [...new Set(parts)].sort().join('\n');
}

export type SortKey = 'rating' | 'metric';

function sortValue(row: IBoardRow, key: SortKey): number | null {
  const v = key === 'rating' ? row.rating?.value : row.metric?.value;
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** The rows by `key`, highest first (`descending: false`: lowest first); rows without a value last, in their order. */
export function sortRows(rows: IBoardRow[], key: SortKey, descending = true): IBoardRow[] {
  return rows
    .map((row, i) => ({ row, i, v: sortValue(row, key) }))
    .sort((x, y) => {
      if (x.v === null || y.v === null) {
        return x.v === y.v ? x.i - y.i : x.v === null ? 1 : -1;
      }
      return x.v === y.v ? x.i - y.i : descending ? y.v - x.v : x.v - y.v;
    })
    .map(x => x.row);
}

/** The leaderboard: loads on `load()`, keeps the last board, the error and the runs picked for a blind A/B. */
export class BoardModel {
  constructor(private _fetch: Fetcher) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get board(): IBoard | null {
    return this._board;
  }

  get error(): Error | null {
    return this._error;
  }

  get loading(): boolean {
    return this._loading;
  }

  /** The runs picked, in the order they were picked (at most two; the base is never one). */
  get selected(): readonly string[] {
    return this._selected;
  }

  /** The two runs of a blind A/B, or null until two are picked. */
  get pair(): [string, string] | null {
    return this._selected.length === 2 ? [this._selected[0], this._selected[1]] : null;
  }

  /**
   * Load the board for `q` (a changed base lets the server pick the eval set and metric, a changed eval set the
   * metric). A reply that arrives after a newer request's is dropped.
   */
  async load(q: IBoardQuery = this._query): Promise<void> {
    this._query = { ...q };
    const seq = ++this._seq;
    this._loading = true;
    this._changed.emit();
    try {
      const board = await this._fetch<IBoard>(boardEndpoint(q));
      if (seq !== this._seq) {
        return;
      }
      this._board = board;
      this._error = null;
      const runs = new Set(board.rows.map(r => r.run));
      this._selected = this._selected.filter(id => runs.has(id));
    } catch (err) {
      if (seq !== this._seq) {
        return;
      }
      this._error = err instanceof Error ? err : new Error(String(err));
    }
    this._loading = false;
    this._changed.emit();
  }

  /** Show another base: the server picks its eval set and metric. */
  setBase(base: string): Promise<void> {
    return this.load({ base });
  }

  /** Show another eval set on the same base: the server picks its first metric. */
  setData(data: string): Promise<void> {
    return this.load({ base: this._board?.base ?? this._query.base, data });
  }

  setMetric(metric: string): Promise<void> {
    const b = this._board;
    return this.load({ base: b?.base ?? this._query.base, data: b?.data ?? this._query.data, metric });
  }

  /** Pick or unpick run `id`; a third pick replaces the first. The base can't be picked (returns false). */
  toggle(id: string): boolean {
    if (id === BASE) {
      return false;
    }
    if (this._selected.includes(id)) {
      this._selected = this._selected.filter(x => x !== id);
    } else {
      this._selected = [...this._selected, id].slice(-2);
    }
    this._changed.emit();
    return true;
  }

  private _board: IBoard | null = null;
  private _error: Error | null = null;
  private _loading = false;
  private _query: IBoardQuery = {};
  private _selected: string[] = [];
  private _seq = 0;
  private _changed = new Signal<this, void>(this);
}
