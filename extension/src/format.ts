/** Pure text helpers shared by the sidebar, viewer and status bar (no DOM). */

import type { IJudges, IRunSummary, IVotes, JSONValue } from './api';

function finite(v: number | null | undefined): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Seconds as `m:ss` or `h:mm:ss` (11.2 → "0:11", 3723 → "1:02:03"); "" when unknown. */
export function formatEta(seconds: number | null | undefined): string {
  if (!finite(seconds) || seconds < 0) {
    return '';
  }
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  if (h > 0) {
    return `${h}:${String(m).padStart(2, '0')}:${ss}`;
  }
  return `${m}:${ss}`;
}

/** A metric value with 3 significant digits (2.2437 → "2.24"); "–" when missing. */
export function formatValue(v: number | null | undefined): string {
  if (!finite(v)) {
    return '–';
  }
  if (v === 0) {
    return '0';
  }
  const a = Math.abs(v);
  if (a >= 1000) {
    return String(Math.round(v));
  }
  if (a < 1e-3) {
    return v.toExponential(2);
  }
  return String(Number(v.toPrecision(3)));
}

/** "15/60", "15" without a total, "" without a step. */
export function formatStep(step: number | null | undefined, total: number | null | undefined): string {
  if (!finite(step)) {
    return finite(total) ? `0/${total}` : '';
  }
  return finite(total) ? `${step}/${total}` : String(step);
}

/** Progress fraction in [0, 1], or null when the total is unknown. */
export function progressFraction(step: number | null | undefined, total: number | null | undefined): number | null {
  if (!finite(total) || total <= 0) {
    return null;
  }
  const s = finite(step) ? step : 0;
  return Math.min(1, Math.max(0, s / total));
}

/** "1–50 of 1234"; "0 of 0" when empty. */
export function pagerText(offset: number, count: number, total: number): string {
  if (count <= 0 || total <= 0) {
    return `0 of ${Math.max(0, total)}`;
  }
  return `${offset + 1}–${offset + count} of ${total}`;
}

/** The warning shown for a run whose files could not be read fully, or null. */
export function corruptWarning(run: IRunSummary): string | null {
  if (run.error) {
    return run.error;
  }
  const n = run.metrics_corrupt_lines || 0;
  if (n > 0) {
    return `${n} corrupt metrics line${n === 1 ? '' : 's'}`;
  }
  return null;
}

/** The empty-state sentence of the sidebar. */
export function emptyText(root: string, exists: boolean): string {
  return exists ? `No runs yet in ${root}` : `The runs folder ${root} does not exist yet`;
}

/** "step 15/60 · loss 2.24 · eval 2.5 · 704 tok/s · ETA 0:11", leaving out unknown parts. */
export function metricsLine(run: IRunSummary, withRate = false): string {
  const parts: string[] = [];
  const step = formatStep(run.step, run.total_steps);
  if (step) {
    parts.push(`step ${step}`);
  }
  if (finite(run.loss)) {
    parts.push(`loss ${formatValue(run.loss)}`);
  }
  if (finite(run.eval_loss)) {
    parts.push(`eval ${formatValue(run.eval_loss)}`);
  }
  if (withRate && finite(run.tokens_per_s)) {
    parts.push(`${Math.round(run.tokens_per_s)} tok/s`);
  }
  const eta = run.active ? formatEta(run.eta_s) : '';
  if (eta) {
    parts.push(`ETA ${eta}`);
  }
  return parts.join(' · ');
}

/** The status-bar text: "LoRA ‹id› · step 15/60 · loss 2.24 · ETA 0:11 (+1 more)"; "" when none. */
export function statusBarText(active: IRunSummary[]): string {
  if (active.length === 0) {
    return '';
  }
  const run = active[0];
  const parts = [`LoRA ${run.id}`];
  const step = formatStep(run.step, run.total_steps);
  if (step) {
    parts.push(`step ${step}`);
  }
  if (finite(run.loss)) {
    parts.push(`loss ${formatValue(run.loss)}`);
  }
  const eta = formatEta(run.eta_s);
  if (eta) {
    parts.push(`ETA ${eta}`);
  }
  let text = parts.join(' · ');
  if (active.length > 1) {
    text += ` (+${active.length - 1} more)`;
  }
  return text;
}

/** Render one settings value for the key/value table. */
export function formatSetting(v: JSONValue | undefined): string {
  if (v === undefined) {
    return '';
  }
  if (typeof v === 'string') {
    return v;
  }
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) {
    return String(v);
  }
  return JSON.stringify(v);
}

/**
 * Flatten nested settings into sorted-by-insertion `[dotted.key, text]` rows:
 * `{lora: {r: 8}}` → `[['lora.r', '8']]`. Arrays and empty objects stay whole.
 */
export function flattenSettings(
  obj: { [key: string]: JSONValue | undefined } | null | undefined,
  prefix = ''
): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  if (!obj) {
    return rows;
  }
  for (const key of Object.keys(obj)) {
    const value = obj[key];
    const name = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
      rows.push(...flattenSettings(value, name));
    } else {
      rows.push([name, formatSetting(value)]);
    }
  }
  return rows;
}

/** "66% (95% CI 40–85%)". */
export function formatPercent(v: number | null | undefined): string {
  return finite(v) ? `${Math.round(v * 100)}%` : '–';
}

/** What a column of votes or evaluations is called: its adapter's name, "base" for the base model (`__base__`). */
export function columnName(column: string): string {
  return column === '__base__' ? 'base' : column;
}

/**
 * The sentence describing the blind votes: "fast preferred in 70% of 5 votes (95% interval 31–92%): fast 3, slow 1,
 * ties 1." (and ", both bad N (counted half, as ties are)" when some votes found both bad). `wins` is keyed by the adapter names in `a` and `b`.
 */
export function votesText(votes: IVotes | null): string {
  if (!votes || !votes.n) {
    return 'No blind votes yet.';
  }
  const winsA = votes.wins[votes.a] ?? 0;
  const winsB = votes.wins[votes.b] ?? 0;
  const [a, b] = [columnName(votes.a), columnName(votes.b)];
  let text = `${b} preferred in ${formatPercent(votes.win_rate)} of ${votes.n} votes`;
  if (votes.interval) {
    text += ` (95% interval ${formatPercent(votes.interval[0])}–${formatPercent(votes.interval[1])})`;
  }
  text += `: ${b} ${winsB}, ${a} ${winsA}, ties ${votes.ties ?? 0}`;
  if (votes.both_bad) {
    text += `, both bad ${votes.both_bad} (counted half, as ties are)`;
  }
  return text + '.';
}

/** A judge's verdict and its agreement with people, in words ('' without judgments). */
export function judgesText(j: IJudges | null): string {
  if (!j) {
    return '';
  }
  const bad = j.invalid ? ` (${j.invalid} answer${j.invalid === 1 ? '' : 's'} it gave could not be read)` : '';
  let text = `Judge ${j.judge}: `;
  text += j.n
    ? `${j.b} preferred in ${formatPercent(j.win_rate)} of ${j.n} judgments${bad}; ` +
      `${j.b} ${j.wins[j.b] ?? 0}, ${j.a} ${j.wins[j.a] ?? 0}, ties ${j.ties}.`
    : `no judgment it gave could be read${bad}.`;
  const ag = j.agreement;
  if (ag.n) {
    text += ` It agrees with people's votes on ${ag.agree} of ${ag.n} pairs (${formatPercent(ag.rate)}).`;
  }
  return text;
}

/** Why a run can't be deleted now, or null when it can (a training run must be stopped first). */
export function deleteBlocked(run: IRunSummary): string | null {
  return run.active ? 'Stop the run before deleting it' : null;
}

/** What people call a run: its name, with the id when the name is not already its start. */
export function runLabel(run: { id: string; name?: string | null }): string {
  const name = run.name?.trim();
  return !name || run.id.startsWith(name) ? run.id : `${name} (${run.id})`;
}

/**
 * Relative sizes with item `i` given `share` of the whole and the others sharing the rest as before (equally when they
 * had none); `null` when item `i` already has at least `share`.
 */
export function grownSizes(sizes: number[], i: number, share: number): number[] | null {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total > 0 && sizes[i] / total >= share) {
    return null;
  }
  const rest = total - sizes[i];
  const others = sizes.length - 1 || 1;
  return sizes.map((s, j) => (j === i ? share : rest > 0 ? (s / rest) * (1 - share) : (1 - share) / others));
}
