import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  Notification,
  showDialog,
  showErrorMessage,
  WidgetTracker
} from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { boardKey, BoardModel, createBlindAb } from './board';
import { BoardView } from './boardview';
import type { IDeleteReply, IRenameReply, IRunDetail, IRunSummary, IStopReply } from './api';
import { describeError } from './api';
import { runLabel } from './format';
import { growInSplit } from './layout';
import { launcherIconUrl, loraRunsIcon } from './icons';
import { RunModel, RunsModel } from './model';
import { createQuickstart } from './quickstart';
import { requestAPI } from './request';
import { RunsPanel } from './sidebar';
import { LoraStatus } from './statusbar';
import { RunViewer } from './viewer';

export namespace CommandIDs {
  export const openRuns = 'lora-nb:open-runs';
  export const openRun = 'lora-nb:open-run';
  export const stopRun = 'lora-nb:stop-run';
  export const insertCode = 'lora-nb:insert-adapter-code';
  export const newQuickstart = 'lora-nb:new-quickstart';
  export const openBoard = 'lora-nb:open-board';
  export const blindAb = 'lora-nb:blind-ab';
}

const CATEGORY = 'LoRA';

function argId(args: ReadonlyPartialJSONObject): string | null {
  return typeof args.id === 'string' && args.id ? args.id : null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'lora-nb:plugin',
  description: 'lora_nb: runs sidebar, run viewer, leaderboard, status bar and quickstart notebook.',
  autoStart: true,
  optional: [ICommandPalette, ILauncher, IStatusBar, INotebookTracker, IDefaultFileBrowser, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    statusBar: IStatusBar | null,
    notebooks: INotebookTracker | null,
    browser: IDefaultFileBrowser | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands, shell } = app;
    const runs = new RunsModel({ fetch: requestAPI });
    // a kernel going idle may have started a run (Start in a Studio): look at once instead of after the back-off
    notebooks?.widgetAdded.connect((_, panel) => {
      panel.sessionContext.statusChanged.connect((_, status) => {
        if (status === 'idle') {
          runs.nudge();
        }
      });
    });
    const viewers = new WidgetTracker<MainAreaWidget<RunViewer>>({
      namespace: 'lora-nb-run'
    });
    const boards = new WidgetTracker<MainAreaWidget<BoardView>>({ namespace: 'lora-nb-board' });

    /** The id from the command's args, or one picked from the runs the sidebar knows. */
    async function pickRun(
      args: ReadonlyPartialJSONObject,
      title: string,
      filter: (active: boolean) => boolean = () => true
    ): Promise<string | null> {
      const id = argId(args);
      if (id) {
        return id;
      }
      const seen = new Map<string, boolean>();
      for (const r of [...runs.active, ...runs.runs]) {
        if (!seen.has(r.id)) {
          seen.set(r.id, r.active);
        }
      }
      const items = [...seen].filter(([, active]) => filter(active)).map(([rid]) => rid);
      if (items.length === 0) {
        Notification.info('No matching LoRA runs.', { autoClose: 4000 });
        return null;
      }
      const result = await InputDialog.getItem({ title, items });
      return result.button.accept ? result.value : null;
    }

    /** Read the runs list and the open viewer of run `id` again. */
    function refreshRun(id: string): void {
      void runs.refresh();
      viewers.forEach(w => {
        if (w.content.model.id === id) {
          void w.content.model.refresh();
        }
      });
    }

    async function stopRun(id: string): Promise<boolean> {
      try {
        await requestAPI<IStopReply>(`runs/${encodeURIComponent(id)}/stop`, {
          method: 'POST'
        });
        return true;
      } catch (err) {
        void showErrorMessage(`Cannot stop ${id}`, describeError(err));
        return false;
      } finally {
        refreshRun(id);
      }
    }

    /** Ask for a new name for `run` and rename it (the id stays); false when cancelled or refused. */
    async function renameRun(run: IRunSummary): Promise<boolean> {
      const asked = await InputDialog.getText({
        title: `Rename ${run.id}`,
        label: 'Name (the run’s id and folder stay the same)',
        text: run.name ?? '',
        okLabel: 'Rename'
      });
      if (!asked.button.accept || asked.value === null || asked.value.trim() === (run.name ?? '')) {
        return false;
      }
      try {
        await requestAPI<IRenameReply>(`runs/${encodeURIComponent(run.id)}`, {
          method: 'PATCH',
          body: JSON.stringify({ name: asked.value })
        });
        return true;
      } catch (err) {
        void showErrorMessage(`Cannot rename ${run.id}`, describeError(err));
        return false;
      } finally {
        refreshRun(run.id);
      }
    }

    /** Confirm, then delete `run`'s folder (refused by the server while it trains); false when cancelled or refused. */
    async function deleteRun(run: IRunSummary): Promise<boolean> {
      const what = run.adapter ? 'its metrics, samples, votes and saved adapter' : 'its metrics, samples and votes';
      const answer = await showDialog({
        title: `Delete ${runLabel(run)}?`,
        body: `The run folder ${run.id} is removed with ${what}. This cannot be undone.`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
      });
      if (!answer.button.accept) {
        return false;
      }
      try {
        await requestAPI<IDeleteReply>(`runs/${encodeURIComponent(run.id)}`, { method: 'DELETE' });
        viewers.forEach(w => {
          if (w.content.model.id === run.id) {
            w.dispose();
          }
        });
        return true;
      } catch (err) {
        void showErrorMessage(`Cannot delete ${run.id}`, describeError(err));
        return false;
      } finally {
        void runs.refresh();
      }
    }

    const actions = {
      open: (id: string) => void commands.execute(CommandIDs.openRun, { id }),
      stop: (id: string) => stopRun(id),
      insert: (id: string) => void commands.execute(CommandIDs.insertCode, { id }),
      rename: (run: IRunSummary) => renameRun(run),
      remove: (run: IRunSummary) => deleteRun(run),
      board: () => void commands.execute(CommandIDs.openBoard)
    };

    // Sidebar.
    const panel = new RunsPanel(runs, actions);
    panel.title.icon = loraRunsIcon;
    panel.title.caption = 'LoRA runs';
    shell.add(panel, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(panel, 'lora-nb-runs');
      void restorer.restore(viewers, {
        command: CommandIDs.openRun,
        args: w => ({ id: w.content.model.id }),
        name: w => w.content.model.id
      });
      void restorer.restore(boards, { command: CommandIDs.openBoard, name: () => 'board' });
    }
    runs.start();
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) {
        void runs.refresh();
      }
    });

    commands.addCommand(CommandIDs.openRuns, {
      label: 'Show LoRA Runs',
      caption: 'Show the LoRA runs sidebar',
      icon: loraRunsIcon,
      execute: () => {
        shell.activateById(panel.id);
        void runs.refresh();
      }
    });

    commands.addCommand(CommandIDs.openRun, {
      label: args => (argId(args) ? `Open LoRA Run ${argId(args)}` : 'Open LoRA Run…'),
      caption: 'Open the viewer of a LoRA training run',
      execute: async args => {
        const id = await pickRun(args, 'Open LoRA run');
        if (!id) {
          return;
        }
        const existing = viewers.find(w => w.content.model.id === id);
        if (existing) {
          shell.activateById(existing.id);
          void existing.content.model.refresh();
          return existing;
        }
        const model = new RunModel(id, { fetch: requestAPI });
        model.follow(runs);
        const content = new RunViewer(model, {
          stop: rid => stopRun(rid),
          insert: rid => void commands.execute(CommandIDs.insertCode, { id: rid }),
          others: () => [...runs.active, ...runs.runs.filter(r => !r.active)],
          detail: rid => requestAPI<IRunDetail>(`runs/${encodeURIComponent(rid)}`)
        });
        const widget = new MainAreaWidget({ content });
        widget.id = `lora-nb-run-${id}`;
        widget.title.label = id;
        widget.title.caption = `LoRA run ${id}`;
        widget.title.icon = loraRunsIcon;
        widget.title.closable = true;
        void viewers.add(widget);
        shell.add(widget, 'main');
        if (!widget.isAttached) {
          // Notebook 7's shell keeps one widget in its main area (the notebook): the viewer goes below it, in a bottom
          // area that opens collapsed to its tab bar, so it is given half the height
          shell.add(widget, 'down');
        }
        shell.activateById(widget.id);
        growInSplit(widget);
        model.start();
        return widget;
      }
    });

    // The leaderboard: one view, made on first use
    let board: MainAreaWidget<BoardView> | null = null;
    commands.addCommand(CommandIDs.openBoard, {
      label: 'Show LoRA Leaderboard',
      caption: 'Rank the runs on one base: eval figures and ratings from blind votes and judges',
      icon: loraRunsIcon,
      execute: () => {
        if (!board || board.isDisposed) {
          const content = new BoardView(new BoardModel(requestAPI), {
            open: id => void commands.execute(CommandIDs.openRun, { id }),
            blindAb: async (a, b) => {
              await commands.execute(CommandIDs.blindAb, { a, b });
            }
          });
          board = new MainAreaWidget({ content });
          board.id = 'lora-nb-board-panel';
          board.title.label = 'LoRA Leaderboard';
          board.title.caption = 'The runs on one base, ranked';
          board.title.icon = loraRunsIcon;
          board.title.closable = true;
          void boards.add(board);
        }
        if (!board.isAttached) {
          shell.add(board, 'main');
          if (!board.isAttached) {
            shell.add(board, 'down'); // Notebook 7: below the notebook, as the run viewer
          }
        }
        shell.activateById(board.id);
        growInSplit(board);
        void board.content.model.load();
        return board;
      }
    });
    // a shown board follows the runs list: a new run, a rename or a new evaluation reloads it (votes: its Refresh)
    let boardSeen: string | null = null;
    runs.changed.connect(() => {
      const key = boardKey([...runs.active, ...runs.runs]);
      if (boardSeen !== null && key !== boardSeen && board?.isVisible) {
        void board.content.model.load();
      }
      boardSeen = key;
    });

    commands.addCommand(CommandIDs.blindAb, {
      label: args =>
        typeof args.a === 'string' && typeof args.b === 'string'
          ? `Blind A/B of ${args.a} and ${args.b} in the Studio`
          : 'Blind A/B of Two LoRA Runs in the Studio',
      caption: 'Create a notebook that opens the Studio on a blind A/B between two runs',
      execute: async args => {
        const a = typeof args.a === 'string' ? args.a : '';
        const b = typeof args.b === 'string' ? args.b : '';
        if (!a || !b) {
          Notification.info('Select two runs on the LoRA Leaderboard first.', { autoClose: 5000 });
          void commands.execute(CommandIDs.openBoard);
          return;
        }
        const dir = typeof args.cwd === 'string' ? args.cwd : (browser?.model.path ?? '');
        try {
          const path = await createBlindAb(app.serviceManager.contents, dir, a, b);
          return commands.execute('docmanager:open', { path, factory: 'Notebook' });
        } catch (err) {
          void showErrorMessage('Cannot create the blind A/B notebook', describeError(err));
        }
      }
    });

    commands.addCommand(CommandIDs.stopRun, {
      label: args => (argId(args) ? `Stop LoRA Run ${argId(args)}` : 'Stop LoRA Run…'),
      caption: 'Ask a running LoRA training loop to stop',
      execute: async args => {
        const id = await pickRun(args, 'Stop LoRA run', active => active);
        return id ? stopRun(id) : false;
      }
    });

    commands.addCommand(CommandIDs.insertCode, {
      label: 'Insert LoRA Adapter Code',
      caption: 'Insert code that loads a run’s adapter below the active notebook cell',
      execute: async args => {
        const panelNb = notebooks?.currentWidget ?? null;
        if (!panelNb) {
          Notification.warning('Open a notebook first: the adapter code is inserted below its active cell.', {
            autoClose: 6000
          });
          return;
        }
        const id = await pickRun(args, 'Insert adapter code of run');
        if (!id) {
          return;
        }
        let detail: IRunDetail;
        try {
          detail = await requestAPI<IRunDetail>(`runs/${encodeURIComponent(id)}`);
        } catch (err) {
          void showErrorMessage(`Cannot load ${id}`, describeError(err));
          return;
        }
        if (!detail.code) {
          Notification.warning(`Run ${id} has no saved adapter yet.`, { autoClose: 6000 });
          return;
        }
        const notebook = panelNb.content;
        NotebookActions.insertBelow(notebook);
        if (notebook.activeCell && notebook.activeCell.model.type !== 'code') {
          NotebookActions.changeCellType(notebook, 'code');
        }
        const cell = notebook.activeCell;
        if (cell) {
          cell.model.sharedModel.setSource(detail.code);
          notebook.mode = 'command';
          notebook.select(cell);
          void notebook.scrollToCell(cell);
        }
        shell.activateById(panelNb.id);
      }
    });

    commands.addCommand(CommandIDs.newQuickstart, {
      label: args => (args.isPalette ? 'New LoRA Quickstart Notebook' : 'LoRA quickstart'),
      caption: 'Create a notebook that fine-tunes a LoRA adapter step by step',
      icon: args => (args.isPalette ? undefined : loraRunsIcon),
      execute: async args => {
        const dir = typeof args.cwd === 'string' ? args.cwd : (browser?.model.path ?? '');
        try {
          const path = await createQuickstart(requestAPI, app.serviceManager.contents, dir);
          return commands.execute('docmanager:open', { path, factory: 'Notebook' });
        } catch (err) {
          void showErrorMessage('Cannot create the LoRA quickstart notebook', describeError(err));
        }
      }
    });

    if (palette) {
      for (const command of [
        CommandIDs.openRuns,
        CommandIDs.openBoard,
        CommandIDs.openRun,
        CommandIDs.stopRun,
        CommandIDs.insertCode,
        CommandIDs.newQuickstart
      ]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }

    if (launcher) {
      launcher.add({
        command: CommandIDs.newQuickstart,
        category: 'Notebook',
        rank: 50,
        kernelIconUrl: launcherIconUrl
      });
    }

    if (statusBar) {
      const item = new LoraStatus(runs, id => void commands.execute(CommandIDs.openRun, { id }));
      statusBar.registerStatusItem('lora-nb:status', {
        item,
        align: 'left',
        rank: 50,
        isActive: () => runs.active.length > 0,
        activeStateChanged: runs.changed
      });
    }
  }
};

export default plugin;
