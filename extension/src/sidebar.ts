/** The runs sidebar: a thin view of RunsModel. */

import { deleteIcon, editIcon, LabIcon, refreshIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import type { IRunSummary } from './api';
import { describeError } from './api';
import { sparkPath } from './chart';
import { button, h, s } from './dom';
import { evalLine, evalTitle } from './evals';
import {
  corruptWarning,
  deleteBlocked,
  emptyText,
  formatEta,
  formatStep,
  formatValue,
  pagerText,
  progressFraction
} from './format';
import { RunsModel } from './model';

/** What the rows' buttons do (commands in the app). */
export interface IRunActions {
  open(id: string): void;
  /** Resolves false when the stop request failed. */
  stop(id: string): Promise<boolean>;
  insert(id: string): void;
  /** Ask for a new name and rename; resolves false when cancelled or refused. */
  rename(run: IRunSummary): Promise<boolean>;
  /** Ask for confirmation and delete; resolves false when cancelled or refused. */
  remove(run: IRunSummary): Promise<boolean>;
  /** Open the leaderboard of the runs. */
  board(): void;
}

/** A small button showing `icon`, labelled for screen readers and tooltips. */
function iconButton(className: string, icon: LabIcon, label: string, onClick: () => void): HTMLButtonElement {
  const b = button(`jp-LoraNb-iconButton ${className}`, '', onClick, label);
  b.setAttribute('aria-label', label);
  b.append(icon.element({ tag: 'span' }));
  return b;
}

const SPARK_W = 80;
const SPARK_H = 20;

/** An inline-SVG sparkline of recent loss values. */
export function sparkline(values: Array<number | null>): SVGElement {
  const d = sparkPath(values, SPARK_W, SPARK_H, 2);
  return s(
    'svg',
    {
      class: 'jp-LoraNb-spark',
      width: SPARK_W,
      height: SPARK_H,
      viewBox: `0 0 ${SPARK_W} ${SPARK_H}`,
      'data-points': values.length,
      'aria-hidden': 'true'
    },
    d ? s('path', { d, fill: 'none' }) : null
  );
}

/** A status badge (`.jp-LoraNb-badge-running`, ...). */
export function badge(status: string): HTMLElement {
  return h('span', { class: `jp-LoraNb-badge jp-LoraNb-badge-${status}` }, status);
}

export class RunsPanel extends Widget {
  constructor(
    readonly model: RunsModel,
    private _actions: IRunActions
  ) {
    super();
    this.addClass('jp-LoraNb-runs');
    this.id = 'lora-nb-runs';

    const refresh = h('button', {
      class: 'jp-LoraNb-button jp-LoraNb-refresh',
      type: 'button',
      title: 'Refresh the runs list',
      'aria-label': 'Refresh'
    });
    refresh.append(refreshIcon.element({ tag: 'span' }));
    refresh.addEventListener('click', () => void this.model.refresh());
    const board = button(
      'jp-LoraNb-openBoard',
      'Leaderboard',
      () => this._actions.board(),
      'Rank the runs on one base: eval figures and ratings from blind votes'
    );

    this._root = h('div', { class: 'jp-LoraNb-root' });
    this._error = h('div', { class: 'jp-LoraNb-error', role: 'alert' });
    this._empty = h('div', { class: 'jp-LoraNb-empty' });
    this._list = h('div', { class: 'jp-LoraNb-list', role: 'list' });
    this._pagerText = h('span', { class: 'jp-LoraNb-pagerText' });
    this._prev = button('jp-LoraNb-prev', 'Prev', () => void this.model.prevPage(), 'Newer runs');
    this._next = button('jp-LoraNb-next', 'Next', () => void this.model.nextPage(), 'Older runs');
    this._pager = h('div', { class: 'jp-LoraNb-pager' }, this._prev, this._pagerText, this._next);

    this.node.append(
      h(
        'div',
        { class: 'jp-LoraNb-header' },
        h(
          'div',
          { class: 'jp-LoraNb-title' },
          h('span', {}, 'LoRA runs'),
          h('span', { class: 'jp-LoraNb-titleButtons' }, board, refresh)
        ),
        this._root
      ),
      this._error,
      this._empty,
      this._list,
      this._pager
    );
    this.model.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.changed.disconnect(this._render, this);
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.model.refresh();
  }

  private _render(): void {
    const model = this.model;
    const page = model.page;

    // Error banner: keep the last list below it.
    const err = model.error;
    this._error.hidden = err === null;
    this._error.textContent = err ? `Cannot load the runs: ${describeError(err)}. Retrying…` : '';

    this._root.textContent = page ? page.root : 'Loading…';
    this._root.title = page ? page.root : '';

    const runs = model.runs;
    const showEmpty = page !== null && runs.length === 0 && model.total === 0;
    this._empty.hidden = !showEmpty;
    this._empty.textContent = showEmpty && page ? emptyText(page.root, page.exists) : '';

    this._pager.hidden = page === null || model.total === 0;
    this._pagerText.textContent = pagerText(model.offset, runs.length, model.total);
    this._prev.disabled = !model.hasPrev;
    this._next.disabled = !model.hasNext;

    // Keyed update: rebuild a row only when its summary changed.
    const seen = new Set<string>();
    let before: ChildNode | null = this._list.firstChild;
    for (const run of runs) {
      seen.add(run.id);
      const key = JSON.stringify(run);
      let entry = this._rows.get(run.id);
      if (!entry || entry.key !== key) {
        const row = this._renderRow(run);
        if (entry) {
          entry.el.replaceWith(row);
          if (before === entry.el) {
            before = row;
          }
        }
        entry = { key, el: row };
        this._rows.set(run.id, entry);
      }
      if (entry.el !== before) {
        this._list.insertBefore(entry.el, before);
      } else {
        before = before.nextSibling;
      }
    }
    for (const [id, entry] of this._rows) {
      if (!seen.has(id)) {
        entry.el.remove();
        this._rows.delete(id);
      }
    }
  }

  private _renderRow(run: IRunSummary): HTMLElement {
    const actions = this._actions;
    const frac = progressFraction(run.step, run.total_steps);
    const warning = corruptWarning(run);
    const stepText = formatStep(run.step, run.total_steps);
    const eta = run.active ? formatEta(run.eta_s) : '';

    const buttons = h('div', { class: 'jp-LoraNb-actions' });
    buttons.append(button('jp-LoraNb-open', 'Open', () => actions.open(run.id), 'Open the run viewer'));
    if (run.active && run.stop_requested) {
      buttons.append(h('span', { class: 'jp-LoraNb-stopping' }, 'stopping…'));
    } else if (run.active) {
      const stop = button(
        'jp-LoraNb-stop',
        'Stop',
        () => {
          stop.disabled = true;
          stop.textContent = 'stopping…';
          void actions.stop(run.id).then(ok => {
            if (!ok) {
              stop.disabled = false;
              stop.textContent = 'Stop';
            }
          });
        },
        'Ask the training loop to stop after the current step'
      );
      buttons.append(stop);
    }
    if (run.adapter) {
      buttons.append(
        button(
          'jp-LoraNb-insert',
          'Insert code',
          () => actions.insert(run.id),
          'Insert code that loads this adapter into the current notebook'
        )
      );
    }
    if (run.status !== 'corrupt') {
      buttons.append(iconButton('jp-LoraNb-rename', editIcon, 'Rename this run', () => void actions.rename(run)));
    }
    const blocked = deleteBlocked(run);
    const remove = iconButton('jp-LoraNb-delete', deleteIcon, blocked ?? 'Delete this run and its adapter', () => {
      remove.disabled = true;
      void actions.remove(run).then(ok => {
        if (!ok) {
          remove.disabled = false;
        }
      });
    });
    remove.disabled = blocked !== null;
    buttons.append(remove);

    const row = h(
      'div',
      {
        class: 'jp-LoraNb-run',
        role: 'listitem',
        tabindex: 0,
        'data-run-id': run.id,
        'data-status': run.status,
        title: `Open ${run.id}`
      },
      h(
        'div',
        { class: 'jp-LoraNb-runHead' },
        badge(run.status),
        h('span', { class: 'jp-LoraNb-runId' }, run.id),
        run.name && !run.id.startsWith(run.name) ? h('span', { class: 'jp-LoraNb-runName' }, run.name) : null
      ),
      run.base_model ? h('div', { class: 'jp-LoraNb-baseModel', title: run.base_model }, run.base_model) : null,
      h(
        'div',
        { class: 'jp-LoraNb-progress', 'aria-hidden': 'true' },
        h('div', {
          class: 'jp-LoraNb-progressBar',
          style: `width: ${frac === null ? 0 : (frac * 100).toFixed(1)}%`
        })
      ),
      h(
        'div',
        { class: 'jp-LoraNb-metrics' },
        h('span', { class: 'jp-LoraNb-step' }, stepText ? `step ${stepText}` : 'step –'),
        h('span', { class: 'jp-LoraNb-loss' }, `loss ${formatValue(run.loss)}`),
        run.eval_loss !== null && run.eval_loss !== undefined
          ? h('span', { class: 'jp-LoraNb-evalLoss' }, `eval ${formatValue(run.eval_loss)}`)
          : null,
        eta ? h('span', { class: 'jp-LoraNb-eta' }, `ETA ${eta}`) : null,
        sparkline(run.spark ?? [])
      ),
      run.eval ? h('div', { class: 'jp-LoraNb-eval', title: evalTitle(run.eval) }, evalLine(run.eval)) : null,
      warning ? h('div', { class: 'jp-LoraNb-warning' }, warning) : null,
      buttons
    );
    row.addEventListener('click', () => actions.open(run.id));
    row.addEventListener('keydown', event => {
      if (event.key === 'Enter' && event.target === row) {
        actions.open(run.id);
      }
    });
    return row;
  }

  private _rows = new Map<string, { key: string; el: HTMLElement }>();
  private _root: HTMLElement;
  private _error: HTMLElement;
  private _empty: HTMLElement;
  private _list: HTMLElement;
  private _pager: HTMLElement;
  private _pagerText: HTMLElement;
  private _prev: HTMLButtonElement;
  private _next: HTMLButtonElement;
}
