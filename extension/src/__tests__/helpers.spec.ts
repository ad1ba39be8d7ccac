import { ApiError, describeError, errorFromResponse, parseBody } from '../api';
import { chartGeometry, extent, linearScale, niceTicks, pathFor, sparkPath, tickLabel } from '../chart';
import {
  corruptWarning,
  deleteBlocked,
  emptyText,
  flattenSettings,
  formatEta,
  formatStep,
  formatValue,
  grownSizes,
  metricsLine,
  pagerText,
  progressFraction,
  runLabel,
  statusBarText
} from '../format';
import { freeName, joinPath } from '../quickstart';
import { summary } from './fake';

describe('formatEta', () => {
  it.each([
    [11.2, '0:11'],
    [0, '0:00'],
    [59.6, '1:00'],
    [62, '1:02'],
    [3723, '1:02:03'],
    [36000, '10:00:00']
  ])('%p → %p', (s, text) => expect(formatEta(s)).toBe(text));
  it('is empty when unknown', () => {
    expect(formatEta(null)).toBe('');
    expect(formatEta(undefined)).toBe('');
    expect(formatEta(NaN)).toBe('');
    expect(formatEta(-3)).toBe('');
  });
});

describe('number and text formatting', () => {
  it('formats values with 3 significant digits', () => {
    expect(formatValue(2.2437)).toBe('2.24');
    expect(formatValue(0.012345)).toBe('0.0123');
    expect(formatValue(12345.6)).toBe('12346');
    expect(formatValue(0)).toBe('0');
    expect(formatValue(null)).toBe('–');
    expect(formatValue(NaN)).toBe('–');
  });
  it('formats steps and progress', () => {
    expect(formatStep(15, 60)).toBe('15/60');
    expect(formatStep(15, null)).toBe('15');
    expect(formatStep(null, null)).toBe('');
    expect(progressFraction(15, 60)).toBe(0.25);
    expect(progressFraction(80, 60)).toBe(1);
    expect(progressFraction(5, null)).toBeNull();
    expect(progressFraction(null, 10)).toBe(0);
  });
  it('formats the pager', () => {
    expect(pagerText(0, 50, 1234)).toBe('1–50 of 1234');
    expect(pagerText(1200, 34, 1234)).toBe('1201–1234 of 1234');
    expect(pagerText(0, 0, 0)).toBe('0 of 0');
  });
  it('names the root in the empty state', () => {
    expect(emptyText('/r', true)).toBe('No runs yet in /r');
    expect(emptyText('/r', false)).toBe('The runs folder /r does not exist yet');
  });
  it('warns about corrupt runs', () => {
    expect(corruptWarning(summary())).toBeNull();
    expect(corruptWarning(summary({ metrics_corrupt_lines: 1 }))).toBe('1 corrupt metrics line');
    expect(corruptWarning(summary({ metrics_corrupt_lines: 3 }))).toBe('3 corrupt metrics lines');
    expect(corruptWarning(summary({ status: 'corrupt', error: 'bad run.json' }))).toBe('bad run.json');
  });
  it('builds the metrics line', () => {
    const run = summary({ active: true, step: 15, total_steps: 60, eta_s: 11.2, eval_loss: 2.5 });
    expect(metricsLine(run)).toBe('step 15/60 · loss 2.24 · eval 2.5 · ETA 0:11');
    expect(metricsLine(run, true)).toBe('step 15/60 · loss 2.24 · eval 2.5 · 704 tok/s · ETA 0:11');
    expect(metricsLine(summary({ step: null, total_steps: null, loss: null }))).toBe('');
  });
  it('builds the status-bar text', () => {
    const a = summary({ id: 'a', active: true, step: 15, total_steps: 60, eta_s: 11 });
    const b = summary({ id: 'b', active: true });
    expect(statusBarText([])).toBe('');
    expect(statusBarText([a])).toBe('LoRA a · step 15/60 · loss 2.24 · ETA 0:11');
    expect(statusBarText([a, b, b])).toBe('LoRA a · step 15/60 · loss 2.24 · ETA 0:11 (+2 more)');
  });
});

describe('run names', () => {
  it('shows the name with the id, unless the id already starts with it', () => {
    expect(runLabel({ id: 'demo-20261123-101500-ab12', name: 'demo' })).toBe('demo-20261123-101500-ab12');
    expect(runLabel({ id: 'demo-1', name: ' short answers ' })).toBe('short answers (demo-1)');
    expect(runLabel({ id: 'demo-1', name: null })).toBe('demo-1');
  });
  it('keeps a training run from being deleted', () => {
    expect(deleteBlocked(summary({ active: true, status: 'running' }))).toMatch(/Stop the run/);
    expect(deleteBlocked(summary({ active: false, status: 'crashed' }))).toBeNull();
  });
});

describe('flattenSettings', () => {
  it('flattens nested objects into dotted keys', () => {
    expect(
      flattenSettings({
        lora: { r: 8, alpha: 16, target_modules: ['q_proj', 'v_proj'] },
        train: { lr: 0.0002, steps: 60, extra: {}, opt: { name: 'adamw', betas: [0.9, 0.99] } },
        seed: null,
        quantize: true,
        note: 'x'
      })
    ).toEqual([
      ['lora.r', '8'],
      ['lora.alpha', '16'],
      ['lora.target_modules', '["q_proj","v_proj"]'],
      ['train.lr', '0.0002'],
      ['train.steps', '60'],
      ['train.extra', '{}'],
      ['train.opt.name', 'adamw'],
      ['train.opt.betas', '[0.9,0.99]'],
      ['seed', 'null'],
      ['quantize', 'true'],
      ['note', 'x']
    ]);
  });
  it('handles missing settings', () => {
    expect(flattenSettings(null)).toEqual([]);
    expect(flattenSettings(undefined)).toEqual([]);
    expect(flattenSettings({})).toEqual([]);
  });
});

describe('sparkPath', () => {
  it('is empty without values', () => {
    expect(sparkPath([], 80, 20)).toBe('');
    expect(sparkPath([null, NaN], 80, 20)).toBe('');
  });
  it('draws a flat middle line for one value', () => {
    expect(sparkPath([3], 80, 20)).toBe('M0,10 L80,10');
    expect(sparkPath([null, 3, NaN], 80, 20)).toBe('M0,10 L80,10');
  });
  it('spans the box, high values at the top', () => {
    expect(sparkPath([4, 2, 0], 80, 20, 0)).toBe('M0,0 L40,10 L80,20');
  });
  it('draws a flat series in the middle', () => {
    expect(sparkPath([1, 1], 10, 20, 0)).toBe('M0,10 L10,10');
  });
  it('breaks the line at null and NaN values', () => {
    expect(sparkPath([4, null, 0, NaN, 2], 40, 20, 0)).toBe('M0,0 M20,20 M40,10');
    expect(sparkPath([4, 3, null, 1, 0], 40, 20, 0)).toBe('M0,0 L10,5 M30,15 L40,20');
  });
});

describe('chart scaling', () => {
  it('maps domains linearly, degenerate to the middle', () => {
    expect(linearScale(0, 10, 100, 200)(5)).toBe(150);
    expect(linearScale(0, 10, 100, 0)(10)).toBe(0);
    expect(linearScale(3, 3, 0, 10)(3)).toBe(5);
  });
  it('finds extents of finite values', () => {
    expect(extent([3, null, 1, NaN, Infinity, 2])).toEqual([1, 3]);
    expect(extent([])).toBeNull();
  });
  it('makes round ticks', () => {
    expect(niceTicks(0, 60, 5)).toEqual([0, 20, 40, 60]);
    expect(niceTicks(1.93, 8.61, 4)).toEqual([2, 4, 6, 8]);
    expect(niceTicks(0.00011, 0.00019, 4)).toEqual([0.00012, 0.00014, 0.00016, 0.00018]);
    expect(niceTicks(5, 5)).toEqual([5]);
    expect(niceTicks(NaN, 1)).toEqual([]);
  });
  it('labels ticks', () => {
    expect(tickLabel(0)).toBe('0');
    expect(tickLabel(2.5)).toBe('2.5');
    expect(tickLabel(20000)).toBe('20k');
    expect(tickLabel(0.0002)).toBe('2e-4');
  });
  it('builds paths with breaks', () => {
    expect(pathFor([{ x: 0, y: 1 }, null, { x: 2, y: 3 }, { x: 4.126, y: 5 }])).toBe('M0,1 M2,3 L4.13,5');
  });
  it('lays out loss, eval dots and learning rate', () => {
    const opts = { width: 110, height: 120, margin: { top: 10, right: 0, bottom: 10, left: 10 } };
    const geo = chartGeometry(
      {
        loss: [
          [0, 10],
          [50, null],
          [100, 0]
        ],
        eval_loss: [[100, 5]],
        learning_rate: [
          [0, 0.0002],
          [100, 0.0001]
        ]
      },
      opts
    );
    expect(geo.lossPoints).toBe(2);
    expect(geo.empty).toBe(false);
    // loss padded by 5 %: domain [-0.5, 10.5] onto [110, 10]
    expect(geo.lossPath).toBe('M10,14.55 L110,105.45');
    expect(geo.evalDots.length).toBe(1);
    expect(geo.evalDots[0].x).toBeCloseTo(110);
    expect(geo.evalDots[0].y).toBeCloseTo(60);
    expect(geo.lrPath).toBe('M10,10 L110,110');
    expect(geo.xTicks.map(t => t.value)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(geo.yTicks.length).toBeGreaterThan(1);
    expect(geo.lrTicks.length).toBeGreaterThan(1);
  });
  it('draws another run over the same axes', () => {
    const opts = { width: 110, height: 120, margin: { top: 10, right: 0, bottom: 10, left: 10 } };
    const alone = chartGeometry(
      {
        loss: [
          [0, 4],
          [10, 2]
        ]
      },
      opts
    );
    const both = chartGeometry(
      {
        loss: [
          [0, 4],
          [10, 2]
        ]
      },
      opts,
      [
        [0, 6],
        [20, 1]
      ]
    );
    expect([alone.overlayPath, alone.overlayPoints]).toEqual(['', 0]);
    expect(both.overlayPoints).toBe(2);
    // the other run is longer and lower: the axes grow to hold both, so this run's line ends mid-way
    expect(both.xTicks.map(t => t.value)).toEqual([0, 5, 10, 15, 20]);
    expect(both.lossPath).not.toBe(alone.lossPath);
    expect(both.overlayPath).toMatch(/^M10,[\d.]+ L110,[\d.]+$/);
    expect(
      chartGeometry({}, opts, [
        [1, 1],
        [2, 0.5]
      ]).empty
    ).toBe(false);
  });
  it('handles empty and one-point series', () => {
    const empty = chartGeometry({});
    expect(empty.empty).toBe(true);
    expect(empty.lossPoints).toBe(0);
    expect(empty.lossPath).toBe('');
    const one = chartGeometry({ loss: [[3, 2.0]] });
    expect(one.lossPoints).toBe(1);
    expect(one.lossPath).toMatch(/^M[\d.]+,[\d.]+$/);
  });
});

describe('API errors', () => {
  it('carries the server error and hint', () => {
    const e = errorFromResponse(409, 'Conflict', { error: 'run is not running', hint: 'nothing to stop' });
    expect(e).toBeInstanceOf(ApiError);
    expect(e.message).toBe('run is not running');
    expect(e.hint).toBe('nothing to stop');
    expect(e.status).toBe(409);
    expect(describeError(e)).toBe('run is not running (nothing to stop)');
  });
  it('falls back to the HTTP status', () => {
    const e = errorFromResponse(500, 'Internal Server Error', '<html>...</html>'.repeat(50));
    expect(e.message).toBe('HTTP 500 Internal Server Error');
    expect(errorFromResponse(404, 'Not Found', null).hint).toMatch(/server extension/);
  });
  it('parses bodies', () => {
    expect(parseBody('')).toBeNull();
    expect(parseBody('{"a":1}')).toEqual({ a: 1 });
    expect(parseBody('oops')).toBe('oops');
    expect(describeError(new Error('x'))).toBe('x');
    expect(describeError('y')).toBe('y');
  });
});

describe('quickstart names', () => {
  it('finds a free name', () => {
    const n = 'lora_nb_quickstart.ipynb';
    expect(freeName(n, new Set())).toBe(n);
    expect(freeName(n, new Set([n]))).toBe('lora_nb_quickstart-1.ipynb');
    expect(freeName(n, new Set([n, 'lora_nb_quickstart-1.ipynb']))).toBe('lora_nb_quickstart-2.ipynb');
    expect(freeName('README', new Set(['README']))).toBe('README-1');
  });
  it('joins paths', () => {
    expect(joinPath('', 'a.ipynb')).toBe('a.ipynb');
    expect(joinPath('x/y/', 'a.ipynb')).toBe('x/y/a.ipynb');
  });
});

describe('grownSizes', () => {
  it('gives the viewer half of a split its area had collapsed to a tab bar', () => {
    expect(grownSizes([965, 35], 1, 0.5)).toEqual([0.5, 0.5]);
    expect(grownSizes([0.7, 0.2, 0.1], 2, 0.5)?.map(x => Math.round(x * 100))).toEqual([39, 11, 50]);
    expect(grownSizes([0, 0], 1, 0.5)).toEqual([0.5, 0.5]);
    expect(grownSizes([0.4, 0.6], 1, 0.5)).toBeNull(); // already tall enough: left as the person sized it
  });
});
