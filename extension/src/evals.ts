/** Pure text of evaluations and the leaderboard (no DOM): figures with intervals, the sidebar's line, the viewer's table. */

import type { IBoard, IBoardRow, IEvalRecord, IEvalSummary, IFigure } from './api';
import { BASE } from './api';
import { formatValue } from './format';

function finite(v: number | null | undefined): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Metrics that are never a share of examples, whatever their values (the others in [0, 1] show as percentages). */
const NOT_SHARES = new Set(['perplexity', 'mean_loss', 'loss', 'answer_length']);

/** Metrics where a smaller figure wins (lora_nb.board.LOWER_IS_BETTER). */
const LOWER_IS_BETTER = new Set(['perplexity', 'mean_loss', 'loss']);

/** Whether a smaller figure of `metric` is the better one. */
export function lowerIsBetter(metric: string | null | undefined): boolean {
  return LOWER_IS_BETTER.has(metric ?? '');
}

/** Whether `metric`'s figures read as a percentage: a share metric whose value and interval lie in [0, 1]. */
export function isShare(metric: string, fig: IFigure | null | undefined): boolean {
  if (NOT_SHARES.has(metric) || !fig) {
    return false;
  }
  return [fig.value, fig.low, fig.high].every(v => v === null || v === undefined || (finite(v) && v >= 0 && v <= 1));
}

/** One number of a figure: "98" (share, the caller adds "%") or "2.24". */
function part(v: number | null | undefined, share: boolean): string {
  if (!finite(v)) {
    return '–';
  }
  return share ? String(Math.round(v * 100)) : formatValue(v);
}

/**
 * A figure with its 95 % interval: "98% [93–100]" for shares, "12.3 [11–13.6]" for the others, "–" without a value;
 * `interval: false` leaves the interval out ("0%").
 */
export function formatFigure(metric: string, fig: IFigure | null | undefined, interval = true): string {
  if (!fig || !finite(fig.value)) {
    return '–';
  }
  const share = isShare(metric, fig);
  const text = part(fig.value, share) + (share ? '%' : '');
  if (!interval || !finite(fig.low) || !finite(fig.high)) {
    return text;
  }
  return `${text} [${part(fig.low, share)}–${part(fig.high, share)}]`;
}

/** The sidebar's line of a run's latest evaluation: "exact_match 98% [93–100] · base 0%"; "" without one. */
export function evalLine(ev: IEvalSummary | null | undefined): string {
  if (!ev) {
    return '';
  }
  const metric = ev.metric ?? 'metric';
  const own = ev.own ? formatFigure(metric, ev.own) : 'no figure of this run';
  const base = ev.base && finite(ev.base.value) ? ` · base ${formatFigure(metric, ev.base, false)}` : '';
  return `${metric} ${own}${base}`;
}

/** "2026-12-08 01:23" of an ISO time (the records' times are UTC); the text itself when it is not one. */
export function shortTime(iso: string | null | undefined): string {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(iso ?? '');
  return m ? `${m[1]} ${m[2]}` : (iso ?? '');
}

/** "eval split of demo (60 examples)"; "unnamed data" without a name, no count without one. */
export function dataText(data: { name: string | null; n: number | null } | null | undefined): string {
  if (!data) {
    return '–';
  }
  const name = data.name || 'unnamed data';
  return finite(data.n) ? `${name} (${data.n} example${data.n === 1 ? '' : 's'})` : name;
}

/** The tooltip of the sidebar's line: what was evaluated and when. */
export function evalTitle(ev: IEvalSummary): string {
  const when = ev.time ? `, ${shortTime(ev.time)} UTC` : '';
  return `Latest evaluation${when}: ${dataText(ev.data)}, 95% intervals in brackets`;
}

/**
 * The columns of a record that are run `runId`'s own: the one whose run is `runId`; without one, every column but
 * the base's (a record stored in the run for adapters of other runs), labelled with their names.
 */
export function ownColumns(rec: IEvalRecord, runId: string): Array<{ column: string; label: string }> {
  const cols = Object.keys(rec.columns ?? rec.figures ?? {});
  const own = cols.filter(c => c !== BASE && rec.columns?.[c]?.run === runId);
  if (own.length) {
    return own.map(column => ({ column, label: '' }));
  }
  return cols.filter(c => c !== BASE).map(column => ({ column, label: `${column}: ` }));
}

/** The viewer's table of a run's evaluations, newest first: [time, data set, metric, this run, base]. */
export function evalRows(records: IEvalRecord[] | null | undefined, runId: string): string[][] {
  const rows: string[][] = [];
  for (const rec of [...(records ?? [])].reverse()) {
    const cols = ownColumns(rec, runId);
    for (const metric of rec.metrics ?? []) {
      const base = formatFigure(metric, rec.figures?.[BASE]?.[metric]);
      const runs = cols.length
        ? cols.map(c => c.label + formatFigure(metric, rec.figures?.[c.column]?.[metric])).join('; ')
        : '–';
      rows.push([shortTime(rec.time) || '–', dataText(rec.data), metric, runs, base]);
    }
  }
  return rows;
}

/** A rating with its interval, rounded: "1043 [1002–1090]"; "–" without games. */
export function formatRating(r: IBoardRow['rating']): string {
  if (!r || !finite(r.value)) {
    return '–';
  }
  const round = (v: number | null | undefined) => (finite(v) ? String(Math.round(v)) : '–');
  return finite(r.low) && finite(r.high) ? `${round(r.value)} [${round(r.low)}–${round(r.high)}]` : round(r.value);
}

/** A leaderboard row's rating: the base is the scale's anchor (1000 by definition, no interval). */
export function boardRating(row: IBoardRow): string {
  return row.run === BASE && row.rating ? '1000 (anchor)' : formatRating(row.rating);
}

/** What a leaderboard row is called: the run's name, "base model" for the base. */
export function boardName(row: IBoardRow): string {
  return row.run === BASE ? 'base model' : row.name || row.run;
}

/** "4 runs · 23 games (blind votes and judge verdicts) · ratings: Bradley–Terry on an Elo scale, base = 1000". */
export function boardSummary(board: IBoard): string {
  const runs = board.rows.filter(r => r.run !== BASE).length;
  const games = `${board.games} game${board.games === 1 ? '' : 's'} (blind votes and judge verdicts)`;
  return `${runs} run${runs === 1 ? '' : 's'} · ${games} · ratings: Bradley–Terry on an Elo scale, base = 1000`;
}
