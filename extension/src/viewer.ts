/** The run viewer: summary, loss chart, warnings, evaluations, votes, probe samples, settings. */

import { Widget } from '@lumino/widgets';

import type { IMetrics, IRunDetail, IRunSummary, Series } from './api';
import { describeError } from './api';
import { chartGeometry, DEFAULT_CHART, IChartGeometry } from './chart';
import { button, h, Parts, s } from './dom';
import { evalRows } from './evals';
import { flattenSettings, judgesText, metricsLine, runLabel, votesText } from './format';
import { RunModel } from './model';
import { badge } from './sidebar';

export interface IViewerActions {
  /** Resolves false when the stop request failed. */
  stop(id: string): Promise<boolean>;
  insert(id: string): void;
  /** The other runs whose loss can be drawn over this one's. */
  others(): IRunSummary[];
  /** Another run's detail (for its loss curve). */
  detail(id: string): Promise<IRunDetail>;
}

/** Another run's loss drawn over the chart. */
export interface IOverlay {
  id: string;
  label: string;
  loss: Series;
}

/** The `<svg>` loss chart; `data-points` = number of loss points drawn (`data-overlay-points`: the other run's). */
export function lossChart(metrics: IMetrics | null, overlay: IOverlay | null = null): SVGElement {
  const geo: IChartGeometry = chartGeometry(metrics?.series ?? {}, DEFAULT_CHART, overlay?.loss);
  const { width, height } = DEFAULT_CHART;
  const { x0, x1, y0, y1 } = geo.plot;
  const svg = s('svg', {
    class: 'jp-LoraNb-chart',
    viewBox: `0 0 ${width} ${height}`,
    width: '100%',
    role: 'img',
    'aria-label': 'Loss by step',
    'data-points': geo.lossPoints,
    'data-overlay-points': overlay ? geo.overlayPoints : null
  });
  svg.append(s('rect', { class: 'jp-LoraNb-chartFrame', x: x0, y: y0, width: x1 - x0, height: y1 - y0 }));
  if (geo.empty) {
    svg.append(
      s(
        'text',
        { class: 'jp-LoraNb-chartNote', x: (x0 + x1) / 2, y: (y0 + y1) / 2, 'text-anchor': 'middle' },
        'no loss values yet'
      )
    );
    return svg;
  }
  for (const t of geo.yTicks) {
    svg.append(
      s('line', { class: 'jp-LoraNb-grid', x1: x0, x2: x1, y1: t.pos, y2: t.pos }),
      s('text', { class: 'jp-LoraNb-tick', x: x0 - 6, y: t.pos + 4, 'text-anchor': 'end' }, t.label)
    );
  }
  for (const t of geo.xTicks) {
    svg.append(
      s('line', { class: 'jp-LoraNb-tickMark', x1: t.pos, x2: t.pos, y1: y1, y2: y1 + 4 }),
      s('text', { class: 'jp-LoraNb-tick', x: t.pos, y: y1 + 16, 'text-anchor': 'middle' }, t.label)
    );
  }
  for (const t of geo.lrTicks) {
    svg.append(
      s('text', { class: 'jp-LoraNb-tick jp-LoraNb-lrTick', x: x1 + 6, y: t.pos + 4, 'text-anchor': 'start' }, t.label)
    );
  }
  svg.append(s('text', { class: 'jp-LoraNb-axisLabel', x: x1, y: height - 2, 'text-anchor': 'end' }, 'step'));
  if (geo.lrPath) {
    svg.append(s('path', { class: 'jp-LoraNb-lr', d: geo.lrPath, fill: 'none' }));
  }
  if (geo.lossPath) {
    svg.append(s('path', { class: 'jp-LoraNb-lossLine', d: geo.lossPath, fill: 'none' }));
  }
  if (geo.overlayPath) {
    svg.append(s('path', { class: 'jp-LoraNb-overlayLine', d: geo.overlayPath, fill: 'none' }));
  }
  for (const p of geo.evalDots) {
    svg.append(s('circle', { class: 'jp-LoraNb-evalDot', cx: p.x, cy: p.y, r: 3 }));
  }
  return svg;
}

function legend(metrics: IMetrics | null, overlay: IOverlay | null): HTMLElement {
  const hasLr = (metrics?.series.learning_rate ?? []).length > 0;
  const hasEval = (metrics?.series.eval_loss ?? []).length > 0;
  return h(
    'div',
    { class: 'jp-LoraNb-legend' },
    h('span', { class: 'jp-LoraNb-legendLoss' }, overlay ? 'loss of this run' : 'loss'),
    overlay ? h('span', { class: 'jp-LoraNb-legendOverlay' }, `loss of ${overlay.label}`) : null,
    hasEval ? h('span', { class: 'jp-LoraNb-legendEval' }, 'eval loss') : null,
    hasLr ? h('span', { class: 'jp-LoraNb-legendLr' }, 'learning rate (right axis)') : null
  );
}

function table(className: string, head: string[], rows: string[][]): HTMLElement {
  return h(
    'table',
    { class: `jp-LoraNb-table ${className}` },
    h('thead', {}, h('tr', {}, ...head.map(c => h('th', {}, c)))),
    h('tbody', {}, ...rows.map(r => h('tr', {}, ...r.map(c => h('td', {}, c)))))
  );
}

function section(className: string, title: string): HTMLElement {
  return h('section', { class: `jp-LoraNb-section ${className}` }, h('h3', {}, title));
}

/** The viewer's content; the MainAreaWidget around it is made in index.ts. */
export class RunViewer extends Widget {
  constructor(
    readonly model: RunModel,
    private _actions: IViewerActions
  ) {
    super();
    this.addClass('jp-LoraNb-viewer');
    this.node.dataset.runId = model.id;
    this.node.dataset.status = '';
    this.node.tabIndex = -1;

    this._stop = button('jp-LoraNb-stop', 'Stop', () => {
      this._stop.disabled = true;
      this._stop.textContent = 'stopping…';
      void this._actions.stop(this.model.id).then(ok => {
        if (!ok) {
          this._stop.disabled = false;
          this._stop.textContent = 'Stop';
        }
      });
    });
    this._insert = button(
      'jp-LoraNb-insert',
      'Insert code',
      () => this._actions.insert(this.model.id),
      'Insert code that loads this adapter into the current notebook'
    );
    const refresh = button(
      'jp-LoraNb-refresh',
      'Refresh',
      () => void this.model.refresh(),
      'Read the run again (e.g. for blind votes cast since)'
    );

    this._head = h('div', { class: 'jp-LoraNb-viewerHead' });
    this._error = h('div', { class: 'jp-LoraNb-error', role: 'alert', hidden: true });
    this._warnings = h('div', { class: 'jp-LoraNb-warnings' });
    this._chart = section('jp-LoraNb-chartSection', 'Loss');
    this._overlayPick = h('select', { class: 'jp-LoraNb-overlayPick', 'aria-label': 'Draw another run’s loss' });
    this._overlayPick.addEventListener('focus', () => this._fillOverlayPick());
    this._overlayPick.addEventListener('mousedown', () => this._fillOverlayPick());
    this._overlayPick.addEventListener('change', () => void this._pickOverlay(this._overlayPick.value));
    this._fillOverlayPick();
    this._chartHead = h('label', { class: 'jp-LoraNb-overlay' }, h('span', {}, 'Compare with '), this._overlayPick);
    this._evals = section('jp-LoraNb-evals', 'Evaluations');
    this._votes = section('jp-LoraNb-votes', 'Blind votes');
    this._samples = section('jp-LoraNb-samples', 'Probe samples');
    this._settings = section('jp-LoraNb-settings', 'Settings');
    this.node.append(
      this._head,
      h('div', { class: 'jp-LoraNb-actions' }, this._stop, this._insert, refresh),
      this._error,
      this._warnings,
      this._chart,
      this._evals,
      this._votes,
      this._samples,
      this._settings
    );
    model.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.dispose();
    super.dispose();
  }

  private _render(): void {
    const detail = this.model.detail;
    const err = this.model.error;
    const message = err ? `Cannot load ${this.model.id}: ${describeError(err)}` : this._overlayError;
    this._error.hidden = !message;
    this._error.textContent = message;
    if (!detail) {
      this._head.textContent = err ? '' : 'Loading…';
      this._stop.hidden = true;
      this._insert.hidden = true;
      return;
    }
    const run = detail.summary;
    this.node.dataset.status = run.status;

    this._parts.update('head', [run, detail.info?.base_model], () => {
      const base = run.base_model ? h('div', { class: 'jp-LoraNb-baseModel' }, `base model: ${run.base_model}`) : '';
      this._head.replaceChildren(
        badge(run.status),
        h('span', { class: 'jp-LoraNb-runId' }, run.id),
        h('span', { class: 'jp-LoraNb-summaryLine' }, metricsLine(run, true) || 'no metrics yet'),
        base
      );
    });

    this._stop.hidden = !run.active;
    if (run.active && run.stop_requested) {
      this._stop.disabled = true;
      this._stop.textContent = 'stopping…';
    } else if (run.active && !this._stop.disabled) {
      this._stop.textContent = 'Stop';
    }
    this._insert.hidden = !(run.adapter || detail.code);

    this._parts.update('warnings', [run.error, detail.metrics?.corrupt_lines, detail.metrics?.partial], () => {
      this._warnings.replaceChildren(...this._warningItems(detail));
    });

    this._parts.update('chart', [detail.metrics, this._overlay], () => {
      const m = detail.metrics;
      this._replaceBody(
        this._chart,
        this._chartHead,
        legend(m, this._overlay),
        lossChart(m, this._overlay),
        m?.downsampled ? h('div', { class: 'jp-LoraNb-note' }, `downsampled from ${m.points} points`) : null
      );
    });

    this._parts.update('evals', detail.evals, () => {
      const rows = evalRows(detail.evals, run.id);
      this._replaceBody(
        this._evals,
        rows.length
          ? table('jp-LoraNb-evalsTable', ['time (UTC)', 'data set', 'metric', 'this run', 'base'], rows)
          : h('p', {}, 'No evaluations yet: `evaluate(…, run=…)` or the Studio’s Evaluate tab stores them here.'),
        rows.length ? h('div', { class: 'jp-LoraNb-note' }, 'Newest first; 95% bootstrap intervals in brackets.') : null
      );
    });

    this._parts.update('votes', [detail.votes, detail.judges], () => {
      const judged = judgesText(detail.judges ?? null);
      this._replaceBody(
        this._votes,
        h('p', {}, votesText(detail.votes)),
        judged ? h('p', { class: 'jp-LoraNb-judges' }, judged) : null
      );
    });

    this._parts.update('samples', detail.samples, () => {
      const samples = detail.samples ?? [];
      this._replaceBody(
        this._samples,
        samples.length
          ? table(
              'jp-LoraNb-samplesTable',
              ['step', 'prompt', 'base', 'adapter'],
              [...samples].reverse().map(x => [x.step === null ? '' : String(x.step), x.prompt, x.base, x.adapter])
            )
          : h('p', {}, 'No probe samples yet.')
      );
    });

    this._parts.update('settings', detail.info?.settings, () => {
      const rows = flattenSettings(detail.info?.settings);
      this._replaceBody(
        this._settings,
        rows.length ? table('jp-LoraNb-settingsTable', ['setting', 'value'], rows) : h('p', {}, 'No settings recorded.')
      );
    });
  }

  private _warningItems(detail: IRunDetail): HTMLElement[] {
    const out: HTMLElement[] = [];
    const run = detail.summary;
    if (run.error) {
      out.push(h('div', { class: 'jp-LoraNb-warning' }, run.error));
    }
    const bad = detail.metrics?.corrupt_lines ?? [];
    if (bad.length) {
      const shown = bad.slice(0, 10).join(', ') + (bad.length > 10 ? ', …' : '');
      out.push(
        h(
          'div',
          { class: 'jp-LoraNb-warning' },
          `${bad.length} corrupt metrics line${bad.length === 1 ? '' : 's'} skipped (line ${shown})`
        )
      );
    }
    if (detail.metrics?.partial) {
      out.push(
        h(
          'div',
          { class: 'jp-LoraNb-warning' },
          'The last metrics line is incomplete (still being written) and was skipped.'
        )
      );
    }
    return out;
  }

  /** The picker's choices: no other run, then every other run the sidebar knows (the chosen one kept). */
  private _fillOverlayPick(): void {
    const chosen = this._overlayPick.value;
    const runs = this._actions.others().filter(r => r.id !== this.model.id && r.status !== 'corrupt');
    const options = [h('option', { value: '' }, 'no other run')];
    for (const r of runs) {
      options.push(h('option', { value: r.id }, runLabel(r)));
    }
    if (chosen && !runs.some(r => r.id === chosen) && this._overlay) {
      options.push(h('option', { value: chosen }, this._overlay.label));
    }
    this._overlayPick.replaceChildren(...options);
    this._overlayPick.value = chosen;
  }

  /** Draw run `id`'s loss over this one's ('' removes it). */
  private async _pickOverlay(id: string): Promise<void> {
    this._overlayError = '';
    if (!id) {
      this._overlay = null;
    } else {
      try {
        const other = await this._actions.detail(id);
        this._overlay = { id, label: runLabel(other.summary), loss: other.metrics.series.loss ?? [] };
      } catch (err) {
        this._overlay = null;
        this._overlayPick.value = '';
        this._overlayError = `Cannot draw ${id}: ${describeError(err)}`;
      }
    }
    this._render();
  }

  private _replaceBody(sectionEl: HTMLElement, ...children: Array<Node | null>): void {
    const title = sectionEl.firstElementChild;
    sectionEl.replaceChildren(...(title ? [title] : []), ...children.filter((c): c is Node => c !== null));
  }

  private _parts = new Parts(); // each part re-rendered only when its data changed
  private _overlay: IOverlay | null = null;
  private _overlayError = '';
  private _overlayPick: HTMLSelectElement;
  private _chartHead: HTMLElement;
  private _head: HTMLElement;
  private _error: HTMLElement;
  private _warnings: HTMLElement;
  private _chart: HTMLElement;
  private _evals: HTMLElement;
  private _votes: HTMLElement;
  private _samples: HTMLElement;
  private _settings: HTMLElement;
  private _stop: HTMLButtonElement;
  private _insert: HTMLButtonElement;
}
