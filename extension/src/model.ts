/**
 * Polling models of the runs list and of one run (no DOM, no JupyterLab imports):
 * the views listen to `changed`; the fetch function is injected so tests can fake the server.
 */

import type { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import type { Fetcher, IRunDetail, IRunSummary, IRunsPage } from './api';

/** Poll cadence (ms). */
export const ACTIVE_INTERVAL = 1000;
export const IDLE_START = 2000;
export const IDLE_MAX = 10000;
export const ERROR_START = 2000;
export const ERROR_MAX = 60000;

export interface IPollState {
  /** Some run is live: poll fast. */
  active: boolean;
  /** Consecutive successful polls with nothing active. */
  idleStreak: number;
  /** Consecutive failed polls. */
  errorStreak: number;
  /** The page is hidden: use the idle rate. */
  hidden: boolean;
}

/**
 * Delay before the next poll of the runs list:
 * errors 2 s → 4 s → … → 60 s; hidden page 10 s; active 1 s; idle 2 s → 4 s → 8 s → 10 s.
 */
export function runsDelay(s: IPollState): number {
  if (s.errorStreak > 0) {
    const d = Math.min(ERROR_MAX, ERROR_START * Math.pow(2, s.errorStreak - 1));
    return s.hidden ? Math.max(d, IDLE_MAX) : d;
  }
  if (s.hidden) {
    return IDLE_MAX;
  }
  if (s.active) {
    return ACTIVE_INTERVAL;
  }
  return Math.min(IDLE_MAX, IDLE_START * Math.pow(2, Math.max(0, s.idleStreak - 1)));
}

/** Delay before the next poll of one run: 1 s while it is active, else 10 s; errors back off. */
export function runDelay(s: IPollState): number {
  if (s.errorStreak > 0) {
    return runsDelay(s);
  }
  return s.active && !s.hidden ? ACTIVE_INTERVAL : IDLE_MAX;
}

export interface IPollingOptions {
  /** The request function (`requestAPI` in the app). */
  fetch: Fetcher;
  /** Whether the page is hidden (default: `document.hidden` when there is a document). */
  isHidden?: () => boolean;
}

function defaultHidden(): boolean {
  return typeof document !== 'undefined' && document.hidden === true;
}

/**
 * A model that polls the server with a lumino `Poll`: `tick()` fetches once and returns the delay before the next
 * fetch (or null to wait for a `refresh()`). Failed requests don't reject the poll's factory: the model keeps the
 * error as state and picks the back-off itself (`runsDelay`, `runDelay`), exact rather than jittered, and polls a
 * hidden page at the idle rate rather than not at all (the poll never stands by).
 * `refresh()` polls now (joining a poll in flight); `dispose()` stops for good.
 */
export abstract class PollingModel implements IDisposable {
  constructor(options: IPollingOptions) {
    this.fetch = options.fetch;
    this.isHidden = options.isHidden ?? defaultHidden;
    this._poll = new Poll<number | null>({
      auto: false,
      name: 'lora-nb',
      factory: () => this._inFlight ?? this._run(),
      frequency: { interval: ACTIVE_INTERVAL, backoff: false, max: ERROR_MAX },
      standby: 'never'
    });
  }

  /** Emitted whenever the data or the error changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The last request error (cleared by the next success). */
  get error(): Error | null {
    return this._error;
  }

  /** Number of requests sent so far. */
  get requests(): number {
    return this._requests;
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  /** A poll is scheduled or in flight. */
  get isPolling(): boolean {
    return !this.isDisposed && (this._inFlight !== null || this._scheduled);
  }

  /** The delay chosen after the last poll (ms), for tests and diagnostics. */
  get nextDelay(): number | null {
    return this._nextDelay;
  }

  /** Start polling (idempotent). */
  start(): void {
    if (this._poll.state.phase === 'constructed') {
      this._scheduled = true;
      void this._poll.start();
    }
  }

  /** Poll now. Resolves when that poll (or the one in flight it joined) is done. */
  async refresh(): Promise<void> {
    if (this.isDisposed) {
      return;
    }
    if (this._inFlight) {
      this._again = true;
      await this._inFlight;
      return;
    }
    this._scheduled = true;
    await this._poll.refresh();
    await this._poll.tick.catch(() => undefined); // rejects only when disposed meanwhile
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    void this._poll.stop(); // clears the timer of the next tick
    this._poll.dispose();
    Signal.clearData(this);
  }

  /** Fetch once, update the state, return the next delay (ms) or null to stop polling. */
  protected abstract tick(): Promise<number | null>;

  protected emitChanged(): void {
    if (!this.isDisposed) {
      this._changed.emit(undefined);
    }
  }

  protected setError(error: Error | null): void {
    this._error = error;
  }

  /** Ask for one more poll right after the current one (the state it fetched went stale). */
  protected pollAgain(): void {
    this._again = true;
  }

  protected countRequest(): void {
    this._requests++;
  }

  /** Consecutive failed requests. */
  protected errorStreak = 0;

  /**
   * Fetch `endPoint`. On success: the value, and whether it differs from the last value fetched (or an error was
   * just cleared). On failure: the error is recorded and announced, and the result is null.
   */
  protected async request<T>(endPoint: string): Promise<{ value: T; changed: boolean } | null> {
    this.countRequest();
    try {
      const value = await this.fetch<T>(endPoint);
      const key = JSON.stringify(value);
      const changed = key !== this._lastKey || this._error !== null;
      this._lastKey = key;
      this.errorStreak = 0;
      this.setError(null);
      return { value, changed };
    } catch (err) {
      this.errorStreak++;
      this.setError(toError(err));
      this.emitChanged();
      return null;
    }
  }

  protected readonly fetch: Fetcher;
  protected readonly isHidden: () => boolean;

  /** The poll's factory: tick (again while asked to), then set when the poll ticks next. */
  private _run(): Promise<number | null> {
    const run = async (): Promise<number | null> => {
      let delay: number | null;
      try {
        do {
          this._again = false;
          delay = await this.tick();
        } while (this._again && !this.isDisposed);
      } finally {
        this._inFlight = null;
      }
      this._nextDelay = delay;
      this._scheduled = delay !== null;
      this._poll.frequency = { interval: delay ?? Poll.NEVER, backoff: false, max: ERROR_MAX };
      return delay;
    };
    this._inFlight = run();
    return this._inFlight;
  }

  private _poll: Poll<number | null>;
  private _changed = new Signal<this, void>(this);
  private _error: Error | null = null;
  private _requests = 0;
  private _again = false;
  private _scheduled = false;
  private _inFlight: Promise<number | null> | null = null;
  private _nextDelay: number | null = null;
  private _lastKey = '';
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export interface IRunsModelOptions extends IPollingOptions {
  /** Page size (default 50). */
  limit?: number;
}

/** The paged runs list, plus every active run (for the status bar). */
export class RunsModel extends PollingModel {
  constructor(options: IRunsModelOptions) {
    super(options);
    this._limit = Math.max(1, options.limit ?? 50);
  }

  /** The last page received, kept while later requests fail. */
  get page(): IRunsPage | null {
    return this._page;
  }

  get runs(): IRunSummary[] {
    return this._page?.runs ?? [];
  }

  /** Every live running run, on any page. */
  get active(): IRunSummary[] {
    return this._page?.active ?? [];
  }

  get total(): number {
    return this._page?.total ?? 0;
  }

  get offset(): number {
    return this._offset;
  }

  get limit(): number {
    return this._limit;
  }

  get hasPrev(): boolean {
    return this._offset > 0;
  }

  get hasNext(): boolean {
    return this._offset + this._limit < this.total;
  }

  /** Look a run up on the current page or among the active ones. */
  find(id: string): IRunSummary | null {
    return this.runs.find(r => r.id === id) ?? this.active.find(r => r.id === id) ?? null;
  }

  /** Poll now, and poll quickly again for a while (after Stop, on opening the sidebar). */
  refresh(): Promise<void> {
    this._idleStreak = 0;
    return super.refresh();
  }

  /**
   * A kernel just finished some work, which may have started a run: refresh now, at most once per second.
   * Costs no request while nothing happens, so the idle rate stays one per 10 s, yet a run started from a
   * notebook shows at once rather than after the idle back-off.
   */
  nudge(now: number = Date.now()): boolean {
    if (now - this._lastNudge < ACTIVE_INTERVAL) {
      return false;
    }
    this._lastNudge = now;
    void this.refresh();
    return true;
  }

  /** Show the page starting at `offset` (clamped at 0) and fetch it now. */
  setOffset(offset: number): Promise<void> {
    const next = Math.max(0, Math.floor(offset));
    if (next === this._offset) {
      return this.refresh();
    }
    this._offset = next;
    this.emitChanged();
    return this.refresh();
  }

  nextPage(): Promise<void> {
    return this.hasNext ? this.setOffset(this._offset + this._limit) : Promise.resolve();
  }

  prevPage(): Promise<void> {
    return this.hasPrev ? this.setOffset(Math.max(0, this._offset - this._limit)) : Promise.resolve();
  }

  protected async tick(): Promise<number | null> {
    const offset = this._offset;
    const limit = this._limit;
    const got = await this.request<IRunsPage>(`runs?offset=${offset}&limit=${limit}`);
    if (got) {
      const page = got.value;
      if (offset !== this._offset) {
        // The page changed while this request was in flight: fetch the new one.
        this.pollAgain();
        return 0;
      }
      const total = page.total ?? 0;
      if (offset > 0 && offset >= total) {
        // Runs were deleted under us: go to the last page that exists.
        this._offset = total > 0 ? Math.floor((total - 1) / limit) * limit : 0;
        this.pollAgain();
        return 0;
      }
      this._idleStreak = (page.active ?? []).length > 0 ? 0 : this._idleStreak + 1;
      if (got.changed) {
        this._page = page;
        this.emitChanged();
      }
    }
    return runsDelay(this._state());
  }

  private _state(): IPollState {
    return {
      active: this.active.length > 0,
      idleStreak: this._idleStreak,
      errorStreak: this.errorStreak,
      hidden: this.isHidden()
    };
  }

  private _page: IRunsPage | null = null;
  private _offset = 0;
  private _limit: number;
  private _idleStreak = 0;
  private _lastNudge = -Infinity;
}

/** Statuses after which a run does not change by itself. */
export const FINISHED = new Set(['completed', 'failed', 'stopped', 'interrupted']);

/** What of a run's list row shows that its detail changed. */
export function summaryKey(s: IRunSummary | null | undefined): string {
  return s
    ? JSON.stringify([
        s.status,
        s.step,
        s.updated,
        s.loss,
        s.eval_loss,
        s.stop_requested,
        s.adapter,
        s.metrics_corrupt_lines
      ])
    : '';
}

/**
 * One run's detail (`runs/<id>`): every second while the run is active; once it is not, no polling of its own
 * (idle traffic stays one list request per 10 s): `follow()` the runs list and it refreshes when the run's row
 * there changes (a resume, a stop, a new adapter).
 */
export class RunModel extends PollingModel {
  constructor(
    readonly id: string,
    options: IPollingOptions
  ) {
    super(options);
  }

  /** Refresh whenever `runs` shows this run's row different from the detail we hold. */
  follow(runs: RunsModel): void {
    const onChange = (): void => {
      const row = [...runs.active, ...runs.runs].find(r => r.id === this.id);
      if (row && this._detail && !this.isPolling && summaryKey(row) !== summaryKey(this._detail.summary)) {
        void this.refresh();
      }
    };
    runs.changed.connect(onChange, this);
  }

  get detail(): IRunDetail | null {
    return this._detail;
  }

  get summary(): IRunSummary | null {
    return this._detail?.summary ?? null;
  }

  protected async tick(): Promise<number | null> {
    const got = await this.request<IRunDetail>(`runs/${encodeURIComponent(this.id)}`);
    if (got?.changed) {
      this._detail = got.value;
      this.emitChanged();
    }
    if (this.errorStreak === 0 && this._detail?.summary.active !== true) {
      return null; // not running: the runs list tells us when it changes
    }
    return runDelay({
      active: this._detail?.summary.active === true,
      idleStreak: 0,
      errorStreak: this.errorStreak,
      hidden: this.isHidden()
    });
  }

  private _detail: IRunDetail | null = null;
}
