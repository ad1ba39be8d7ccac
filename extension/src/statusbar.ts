/** The status-bar item: the first active run's progress; hidden when nothing runs. */

import { Widget } from '@lumino/widgets';

import { statusBarText } from './format';
import { RunsModel } from './model';

export class LoraStatus extends Widget {
  constructor(
    readonly model: RunsModel,
    private _open: (id: string) => void
  ) {
    super();
    this.addClass('jp-LoraNb-status');
    this.node.title = 'Open the running LoRA run';
    this.node.addEventListener('click', () => {
      const first = this.model.active[0];
      if (first) {
        this._open(first.id);
      }
    });
    model.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    if (!this.isDisposed) {
      this.model.changed.disconnect(this._render, this);
    }
    super.dispose();
  }

  private _render(): void {
    const text = statusBarText(this.model.active);
    this.node.textContent = text;
    this.node.dataset.runId = this.model.active[0]?.id ?? '';
    this.setHidden(text === '');
  }
}
