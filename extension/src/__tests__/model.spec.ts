import { ACTIVE_INTERVAL, ERROR_MAX, IDLE_MAX, RunModel, RunsModel, runDelay, runsDelay } from '../model';
import type { Fetcher } from '../api';
import { FakeServer } from './fake';

const tick = (ms: number) => jest.advanceTimersByTimeAsync(ms);

/** Wait for a `refresh()` (or a paging call): the poll runs it on a zero-delay timer. */
async function settle(done: Promise<void>): Promise<void> {
  await tick(0);
  await done;
}

describe('runsDelay', () => {
  const base = { active: false, idleStreak: 1, errorStreak: 0, hidden: false };
  it('polls every second while a run is active', () => {
    expect(runsDelay({ ...base, active: true, idleStreak: 0 })).toBe(1000);
  });
  it('backs off 2, 4, 8, 10, 10 s when idle', () => {
    expect([1, 2, 3, 4, 5, 50].map(n => runsDelay({ ...base, idleStreak: n }))).toEqual([
      2000, 4000, 8000, 10000, 10000, 10000
    ]);
  });
  it('backs off on errors up to 60 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(n => runsDelay({ ...base, errorStreak: n }))).toEqual([
      2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000
    ]);
  });
  it('uses the idle rate when the page is hidden', () => {
    expect(runsDelay({ ...base, active: true, hidden: true })).toBe(IDLE_MAX);
    expect(runsDelay({ ...base, errorStreak: 1, hidden: true })).toBe(IDLE_MAX);
    expect(runsDelay({ ...base, errorStreak: 9, hidden: true })).toBe(ERROR_MAX);
  });
  it('runDelay: 1 s active, 10 s otherwise', () => {
    expect(runDelay({ ...base, active: true })).toBe(ACTIVE_INTERVAL);
    expect(runDelay(base)).toBe(IDLE_MAX);
    expect(runDelay({ ...base, errorStreak: 2 })).toBe(4000);
  });
});

describe('RunsModel', () => {
  let server: FakeServer;
  let hidden: boolean;
  let model: RunsModel;

  beforeEach(() => {
    jest.useFakeTimers();
    server = new FakeServer();
    hidden = false;
    model = new RunsModel({ fetch: server.fetch, limit: 50, isHidden: () => hidden });
  });

  afterEach(() => {
    model.dispose();
    jest.useRealTimers();
  });

  it('fetches the first page on start and emits changed', async () => {
    let changes = 0;
    model.changed.connect(() => changes++);
    model.start();
    await tick(0);
    expect(server.calls).toEqual(['runs?offset=0&limit=50']);
    expect(model.runs.map(r => r.id)).toEqual(['run-0', 'run-1', 'run-2']);
    expect(model.total).toBe(3);
    expect(model.error).toBeNull();
    expect(changes).toBe(1);
  });

  it('polls every second while a run is active', async () => {
    server.activeCount = 1;
    model.start();
    await tick(0);
    expect(server.count).toBe(1);
    await tick(10_000);
    expect(server.count).toBe(11);
    expect(model.active.map(r => r.id)).toEqual(['run-0']);
  });

  it('reflects a new metrics line within 2 s while active', async () => {
    server.activeCount = 1;
    model.start();
    await tick(0);
    server.step = 16;
    await tick(1000);
    expect(model.active[0].step).toBe(16);
  });

  it('backs off to at most one request per 10 s when idle', async () => {
    model.start();
    await tick(0);
    // 0, 2, 6, 14, 24, 34, ... s
    await tick(14_000);
    expect(server.count).toBe(4);
    const before = server.count;
    await tick(100_000);
    expect(server.count - before).toBe(10);
    expect(model.nextDelay).toBe(10_000);
  });

  it('speeds up when a run becomes active and backs off when it ends', async () => {
    model.start();
    await tick(60_000);
    server.activeCount = 1;
    await tick(10_000); // the next idle poll sees it
    const before = server.count;
    await tick(5_000);
    expect(server.count - before).toBe(5);
    server.activeCount = 0;
    await tick(1000);
    expect(model.nextDelay).toBe(2000);
  });

  it('uses the idle rate while the page is hidden', async () => {
    server.activeCount = 1;
    hidden = true;
    model.start();
    await tick(0);
    const before = server.count;
    await tick(30_000);
    expect(server.count - before).toBe(3);
  });

  it('backs off on errors, keeps the last page, then recovers', async () => {
    server.activeCount = 1;
    model.start();
    await tick(0);
    expect(model.runs.length).toBe(3);
    server.fail = true;
    await tick(1000);
    expect(model.error?.message).toBe('server down');
    expect(model.runs.length).toBe(3); // last list kept
    expect(model.nextDelay).toBe(2000);
    // 2, 4, 8, 16, 32, 60, 60 s
    const before = server.count;
    await tick(2000 + 4000 + 8000 + 16000 + 32000 + 60000 + 60000);
    expect(server.count - before).toBe(7);
    expect(model.nextDelay).toBe(60_000);
    server.fail = false;
    await tick(60_000);
    expect(model.error).toBeNull();
    expect(model.nextDelay).toBe(1000);
  });

  it('refresh() polls immediately and restarts the idle back-off', async () => {
    model.start();
    await tick(60_000);
    expect(model.nextDelay).toBe(10_000);
    const before = server.count;
    await settle(model.refresh());
    expect(server.count).toBe(before + 1);
    expect(model.nextDelay).toBe(2000);
    // the old timer was replaced, not doubled
    await tick(2000);
    expect(server.count).toBe(before + 2);
  });

  it('coalesces refreshes asked for before the poll runs', async () => {
    model.start();
    const a = model.refresh();
    const b = model.refresh();
    await tick(0);
    await Promise.all([a, b]);
    expect(server.count).toBe(1);
  });

  it('joins a poll in flight and polls once more after it, never two at once', async () => {
    const pending: Array<() => void> = [];
    let inFlight = 0;
    let most = 0;
    const slow: Fetcher = <T>(endPoint: string): Promise<T> => {
      inFlight++;
      most = Math.max(most, inFlight);
      return new Promise<T>(resolve =>
        pending.push(() => {
          inFlight--;
          void server.fetch<T>(endPoint).then(resolve);
        })
      );
    };
    const m = new RunsModel({ fetch: slow, isHidden: () => false });
    m.start();
    await tick(0);
    expect(pending.length).toBe(1); // the first poll waits for its reply
    const a = m.refresh();
    const b = m.refresh();
    pending.shift()?.();
    await tick(0);
    expect(pending.length).toBe(1); // one more poll for both refreshes
    pending.shift()?.();
    await Promise.all([a, b]);
    expect(server.count).toBe(2);
    expect(most).toBe(1);
    expect(m.isPolling).toBe(true);
    m.dispose();
    expect(m.isPolling).toBe(false);
  });

  it('pages with offsets and clamps at both ends', async () => {
    server.total = 120;
    model.start();
    await tick(0);
    expect(model.hasPrev).toBe(false);
    expect(model.hasNext).toBe(true);
    await settle(model.nextPage());
    expect(server.calls[server.calls.length - 1]).toBe('runs?offset=50&limit=50');
    expect(model.runs[0].id).toBe('run-50');
    await settle(model.nextPage());
    expect(model.offset).toBe(100);
    expect(model.runs.length).toBe(20);
    expect(model.hasNext).toBe(false);
    await settle(model.nextPage());
    expect(model.offset).toBe(100);
    await settle(model.prevPage());
    expect(model.offset).toBe(50);
    await settle(model.setOffset(-5));
    expect(model.offset).toBe(0);
    expect(model.hasPrev).toBe(false);
  });

  it('goes back to the last page when runs disappear', async () => {
    server.total = 120;
    model.start();
    await tick(0);
    await settle(model.setOffset(100));
    server.total = 30;
    await settle(model.refresh());
    expect(model.offset).toBe(0);
    expect(model.runs.length).toBe(30);
  });

  it('does not emit changed when nothing changed', async () => {
    server.activeCount = 1;
    let changes = 0;
    model.changed.connect(() => changes++);
    model.start();
    await tick(5000);
    expect(server.count).toBe(6);
    expect(changes).toBe(1);
  });

  it('stops polling when disposed', async () => {
    model.start();
    await tick(0);
    model.dispose();
    const before = server.count;
    await tick(60_000);
    expect(server.count).toBe(before);
  });
});

describe('RunsModel.nudge', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('refreshes at once when a kernel goes idle, at most once per second, and resets the idle back-off', async () => {
    const server = new FakeServer();
    const model = new RunsModel({ fetch: server.fetch, isHidden: () => false });
    model.start();
    await tick(30_000); // idle: backed off to 10 s
    expect(model.nextDelay).toBe(IDLE_MAX);
    const before = server.count;
    expect(model.nudge(100_000)).toBe(true);
    await tick(0);
    expect(server.count).toBe(before + 1);
    expect(model.nextDelay).toBe(2000);
    expect(model.nudge(100_500)).toBe(false); // within a second of the last one
    await tick(0);
    expect(server.count).toBe(before + 1);
    expect(model.nudge(101_001)).toBe(true);
    model.dispose();
  });
});

describe('RunModel', () => {
  let server: FakeServer;

  beforeEach(() => {
    jest.useFakeTimers();
    server = new FakeServer();
  });

  afterEach(() => jest.useRealTimers());

  it('polls runs/<id> every second while the run is active', async () => {
    server.activeCount = 1;
    const model = new RunModel('run 1', { fetch: server.fetch, isHidden: () => false });
    model.start();
    await tick(0);
    expect(server.calls).toEqual(['runs/run%201']);
    expect(model.summary?.id).toBe('run 1');
    await tick(5000);
    expect(server.count).toBe(6);
    model.dispose();
  });

  it('stops polling once the run is not active, and refreshes when its list row changes', async () => {
    server.activeCount = 1;
    const runs = new RunsModel({ fetch: server.fetch, isHidden: () => false });
    const model = new RunModel('run-0', { fetch: server.fetch, isHidden: () => false });
    model.follow(runs);
    model.start();
    await tick(3000);
    server.activeCount = 0;
    await tick(1000);
    expect(model.summary?.status).toBe('completed');
    const detailCalls = () => server.calls.filter(c => c.startsWith('runs/')).length;
    const before = detailCalls();
    await tick(60_000);
    expect(detailCalls()).toBe(before); // no polling of its own once finished
    expect(model.isPolling).toBe(false);
    await settle(runs.refresh()); // the list is unchanged: no detail request
    expect(detailCalls()).toBe(before);
    server.step = 7; // the run changed (e.g. resumed): the list shows it, the detail follows
    await settle(runs.refresh());
    await tick(1); // asked for during the list's poll: fake timers run a zero delay set then 1 ms later
    expect(detailCalls()).toBe(before + 1);
    expect(model.summary?.step).toBe(7);
    model.dispose();
    runs.dispose();
  });

  it('backs off on errors and exposes them', async () => {
    const model = new RunModel('r', { fetch: server.fetch, isHidden: () => false });
    server.fail = true;
    model.start();
    await tick(0);
    expect(model.error?.message).toBe('server down');
    expect(model.detail).toBeNull();
    expect(model.nextDelay).toBe(2000);
    await tick(2000);
    expect(model.nextDelay).toBe(4000);
    server.fail = false;
    await tick(4000);
    expect(model.error).toBeNull();
    expect(model.detail).not.toBeNull();
    model.dispose();
  });
});
