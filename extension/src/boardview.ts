/** The leaderboard view: a thin view of BoardModel (selectors, the ranked table, the blind A/B button). */

import { Widget } from '@lumino/widgets';

import type { IBoard, IBoardRow } from './api';
import { BASE, describeError } from './api';
import { BoardModel, SortKey, sortRows } from './board';
import { button, h, Parts } from './dom';
import { boardName, boardRating, boardSummary, dataText, formatFigure, lowerIsBetter } from './evals';

/** What the board's buttons do (commands in the app). */
export interface IBoardActions {
  open(id: string): void;
  /** Create and open a notebook with a blind A/B between runs `a` and `b`. */
  blindAb(a: string, b: string): Promise<void>;
}

function select(className: string, label: string, onChange: (value: string) => void): HTMLSelectElement {
  const el = h('select', { class: `jp-LoraNb-boardPick ${className}`, 'aria-label': label });
  el.addEventListener('change', () => onChange(el.value));
  return el;
}

function fillSelect(el: HTMLSelectElement, options: Array<[string, string]>, value: string | null): void {
  el.replaceChildren(...options.map(([v, text]) => h('option', { value: v }, text)));
  el.value = value ?? '';
  el.disabled = options.length <= 1;
}

export class BoardView extends Widget {
  constructor(
    readonly model: BoardModel,
    private _actions: IBoardActions
  ) {
    super();
    this.addClass('jp-LoraNb-board');
    this.id = 'lora-nb-board';
    this.node.tabIndex = -1;
    this._base = select('jp-LoraNb-boardBasePick', 'Base model', v => void model.setBase(v));
    this._data = select('jp-LoraNb-boardDataPick', 'Eval set', v => void model.setData(v));
    this._metric = select('jp-LoraNb-boardMetricPick', 'Metric', v => void model.setMetric(v));
    const refresh = button('jp-LoraNb-refresh', 'Refresh', () => void model.load(), 'Read the runs and votes again');
    this._error = h('div', { class: 'jp-LoraNb-error', role: 'alert', hidden: true });
    this._summary = h('p', { class: 'jp-LoraNb-note jp-LoraNb-boardSummary' });
    this._table = h('div', { class: 'jp-LoraNb-boardTable' });
    this._pickText = h('span', { class: 'jp-LoraNb-note jp-LoraNb-pickText' });
    this._ab = button('jp-LoraNb-blindAb', 'Blind A/B in the Studio', () => void this._blindAb(), '');
    this.node.append(
      h('div', { class: 'jp-LoraNb-viewerHead' }, h('span', { class: 'jp-LoraNb-boardTitle' }, 'Leaderboard'), refresh),
      h(
        'div',
        { class: 'jp-LoraNb-boardControls' },
        h('label', {}, h('span', {}, 'Base'), this._base),
        h('label', {}, h('span', {}, 'Eval set'), this._data),
        h('label', {}, h('span', {}, 'Metric'), this._metric)
      ),
      this._error,
      this._summary,
      this._table,
      h('div', { class: 'jp-LoraNb-actions jp-LoraNb-boardActions' }, this._ab, this._pickText)
    );
    model.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const model = this.model;
    const board = model.board;
    this.node.dataset.loading = String(model.loading);
    this._error.hidden = model.error === null;
    this._error.textContent = model.error ? `Cannot load the leaderboard: ${describeError(model.error)}` : '';
    if (board) {
      this._parts.update('controls', [board.bases, board.base, board.sets, board.data, board.metric], () =>
        this._renderControls(board)
      );
      this._summary.textContent = boardSummary(board);
      this._parts.update('table', [board.rows, board.metric, model.selected, this._sort], () =>
        this._table.replaceChildren(this._renderTable(board))
      );
    } else {
      this._summary.textContent = model.loading ? 'Loading…' : '';
    }
    const pair = model.pair;
    this._ab.disabled = pair === null;
    this._ab.title = pair
      ? `Open a notebook that starts a blind A/B of ${pair[0]} and ${pair[1]} in the Studio`
      : 'Select two runs in the table first';
    const names = model.selected.map(id => board?.rows.find(r => r.run === id)?.name || id);
    this._pickText.textContent = pair
      ? `A: ${names[0]} · B: ${names[1]} (shown blind, in random order)`
      : `Select two runs (${model.selected.length} of 2 selected)`;
  }

  private _renderControls(board: IBoard): void {
    fillSelect(
      this._base,
      board.bases.map(b => [b.model, `${b.model} (${b.runs} run${b.runs === 1 ? '' : 's'})`]),
      board.base
    );
    const sets: Array<[string, string]> = board.sets.map(s => [
      s.fingerprint,
      `${dataText(s)} · ${s.runs} run${s.runs === 1 ? '' : 's'}`
    ]);
    fillSelect(this._data, sets.length ? sets : [['', 'no evaluations on this base yet']], board.data);
    const set = board.sets.find(s => s.fingerprint === board.data);
    const metrics = set?.metrics ?? [];
    fillSelect(this._metric, metrics.length ? metrics.map(m => [m, m]) : [['', '–']], board.metric);
  }

  private _renderTable(board: IBoard): HTMLElement {
    if (!board.rows.length) {
      return h('p', {}, board.base ? `No runs on ${board.base} yet.` : 'No runs with a base model yet.');
    }
    const rows = this._sort ? sortRows(board.rows, this._sort.key, this._sort.descending) : board.rows;
    const metric = board.metric ?? 'metric';
    const head = h(
      'tr',
      {},
      h('th', { class: 'jp-LoraNb-boardPickCol' }, h('span', { class: 'jp-LoraNb-srOnly' }, 'selected')),
      h('th', { class: 'jp-LoraNb-num' }, '#'),
      h('th', {}, 'run'),
      this._sortHeader('metric', `${metric} [95% interval]`),
      this._sortHeader('rating', 'rating [95% interval]'),
      h('th', { class: 'jp-LoraNb-num' }, 'games')
    );
    return h(
      'table',
      { class: 'jp-LoraNb-table jp-LoraNb-boardRows' },
      h('thead', {}, head),
      h('tbody', {}, ...rows.map((row, i) => this._renderRow(row, i + 1, metric)))
    );
  }

  private _sortHeader(key: SortKey, label: string): HTMLElement {
    const sort = this._sort;
    const mark = sort?.key === key ? (sort.descending ? ' ▼' : ' ▲') : '';
    const th = h(
      'th',
      { class: 'jp-LoraNb-sortable', 'data-sort': key, title: `Sort by ${key}`, tabindex: 0 },
      label + mark
    );
    // first click: best first (the smallest first for a metric where smaller wins); then the other way round
    const best = !(key === 'metric' && lowerIsBetter(this.model.board?.metric));
    const flip = () => {
      this._sort = { key, descending: sort?.key === key ? !sort.descending : best };
      this._render();
    };
    th.addEventListener('click', flip);
    th.addEventListener('keydown', e => e.key === 'Enter' && flip());
    return th;
  }

  private _renderRow(row: IBoardRow, rank: number, metric: string): HTMLElement {
    const isBase = row.run === BASE;
    const picked = this.model.selected.indexOf(row.run);
    const box = h('input', {
      type: 'checkbox',
      class: 'jp-LoraNb-boardCheck',
      'aria-label': `Select ${boardName(row)} for a blind A/B`,
      checked: picked >= 0,
      disabled: isBase,
      title: isBase ? 'The base model: pick two runs for a blind A/B' : null
    });
    box.addEventListener('click', e => e.stopPropagation());
    box.addEventListener('change', () => this.model.toggle(row.run));
    const name = isBase
      ? h('span', { class: 'jp-LoraNb-boardName' }, boardName(row))
      : h('a', { class: 'jp-LoraNb-boardName', href: '#', title: `Open the viewer of ${row.run}` }, boardName(row));
    if (!isBase) {
      name.addEventListener('click', e => {
        e.preventDefault();
        e.stopPropagation();
        this._actions.open(row.run);
      });
    }
    const tr = h(
      'tr',
      {
        class: `jp-LoraNb-boardRow${picked >= 0 ? ' jp-mod-selected' : ''}${isBase ? ' jp-LoraNb-boardBaseRow' : ''}`,
        'data-run-id': row.run
      },
      h(
        'td',
        { class: 'jp-LoraNb-boardPickCol' },
        box,
        picked >= 0 ? h('span', { class: 'jp-LoraNb-abMark' }, 'AB'[picked]) : null
      ),
      h('td', { class: 'jp-LoraNb-num' }, String(rank)),
      h('td', { title: isBase ? row.name : row.run }, name),
      h('td', { class: 'jp-LoraNb-num jp-LoraNb-boardMetric' }, formatFigure(metric, row.metric)),
      h(
        'td',
        {
          class: 'jp-LoraNb-num jp-LoraNb-boardRating',
          title: isBase ? 'The base is the anchor of the scale: 1000 by definition' : null
        },
        boardRating(row)
      ),
      h('td', { class: 'jp-LoraNb-num' }, String(row.games))
    );
    if (!isBase) {
      tr.addEventListener('click', () => this.model.toggle(row.run));
    }
    return tr;
  }

  private async _blindAb(): Promise<void> {
    const pair = this.model.pair;
    if (!pair) {
      return;
    }
    this._ab.disabled = true;
    try {
      await this._actions.blindAb(pair[0], pair[1]);
    } finally {
      this._render();
    }
  }

  private _parts = new Parts(); // each part re-rendered only when its data changed
  private _sort: { key: SortKey; descending: boolean } | null = null;
  private _base: HTMLSelectElement;
  private _data: HTMLSelectElement;
  private _metric: HTMLSelectElement;
  private _error: HTMLElement;
  private _summary: HTMLElement;
  private _table: HTMLElement;
  private _ab: HTMLButtonElement;
  private _pickText: HTMLElement;
}
