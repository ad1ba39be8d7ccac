import type { Fetcher, IRunDetail, IRunSummary, IRunsPage } from '../api';

export function summary(over: Partial<IRunSummary> = {}): IRunSummary {
  return {
    id: 'run-20261123-101500-ab12',
    name: 'run',
    status: 'completed',
    active: false,
    base_model: 'tiny-model',
    step: 60,
    total_steps: 60,
    loss: 2.24,
    eval_loss: null,
    eta_s: null,
    tokens_per_s: 704,
    created: '2026-11-23T10:15:00+00:00',
    updated: '2026-11-23T10:15:40+00:00',
    adapter: true,
    stop_requested: false,
    metrics_corrupt_lines: 0,
    error: null,
    spark: [8.4, 7.9],
    ...over
  };
}

/** A fake server for the runs list: `total` runs, some active; records every endpoint. */
export class FakeServer {
  calls: string[] = [];
  total = 3;
  activeCount = 0;
  fail = false;
  step = 0;

  fetch: Fetcher = <T>(endPoint: string): Promise<T> => {
    this.calls.push(endPoint);
    if (this.fail) {
      return Promise.reject(new Error('server down'));
    }
    if (endPoint.startsWith('runs?')) {
      const q = new URLSearchParams(endPoint.slice(5));
      const offset = Number(q.get('offset'));
      const limit = Number(q.get('limit'));
      const runs: IRunSummary[] = [];
      for (let i = offset; i < Math.min(this.total, offset + limit); i++) {
        runs.push(summary({ id: `run-${i}`, active: i < this.activeCount, step: this.step }));
      }
      const active = Array.from({ length: this.activeCount }, (_, i) =>
        summary({ id: `run-${i}`, status: 'running', active: true, step: this.step })
      );
      const page: IRunsPage = {
        root: '/tmp/runs',
        exists: true,
        total: this.total,
        offset,
        limit,
        active,
        runs
      };
      return Promise.resolve(page as unknown as T);
    }
    if (endPoint.startsWith('runs/')) {
      const detail: IRunDetail = {
        summary: summary({
          id: decodeURIComponent(endPoint.slice(5)),
          active: this.activeCount > 0,
          status: this.activeCount > 0 ? 'running' : 'completed',
          step: this.step
        }),
        info: {},
        metrics: { series: {}, points: 0, downsampled: false, corrupt_lines: [], partial: false },
        samples: [],
        votes: null,
        judges: null,
        code: null
      };
      return Promise.resolve(detail as unknown as T);
    }
    return Promise.reject(new Error(`unexpected ${endPoint}`));
  };

  /** Number of requests so far. */
  get count(): number {
    return this.calls.length;
  }
}
