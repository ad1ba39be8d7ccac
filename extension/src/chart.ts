/** Pure geometry for the inline-SVG sparkline and loss chart (no DOM). */

/**
 * `[step, value]` pairs as the chart takes them: the server's `Series` (finite values only), or any pairs with gaps
 * (`null`, NaN), which are skipped.
 */
export type ChartSeries = ReadonlyArray<readonly [number, number | null]>;

export interface IPoint {
  x: number;
  y: number;
}

function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function fmt(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** A linear map from [d0, d1] to [r0, r1]; a degenerate domain maps to the middle of the range. */
export function linearScale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  if (!finite(d0) || !finite(d1) || d0 === d1) {
    const mid = (r0 + r1) / 2;
    return () => mid;
  }
  const k = (r1 - r0) / (d1 - d0);
  return (v: number) => r0 + (v - d0) * k;
}

/** [min, max] of the finite values, or null when there are none. */
export function extent(values: Iterable<number | null | undefined>): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (finite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  return lo <= hi ? [lo, hi] : null;
}

/** An SVG path through points; a null point breaks the line (a new `M`). */
export function pathFor(points: Array<IPoint | null>): string {
  let d = '';
  let pen = false;
  for (const p of points) {
    if (p === null) {
      pen = false;
      continue;
    }
    d += `${d ? ' ' : ''}${pen ? 'L' : 'M'}${fmt(p.x)},${fmt(p.y)}`;
    pen = true;
  }
  return d;
}

/**
 * The sparkline path of recent values in a `width`×`height` box.
 * Missing/NaN values break the line; one value (or a flat series) draws a flat line
 * across the middle; no values give "".
 */
export function sparkPath(
  values: ReadonlyArray<number | null | undefined>,
  width: number,
  height: number,
  pad = 1
): string {
  const ext = extent(values);
  if (ext === null) {
    return '';
  }
  const y = linearScale(ext[0], ext[1], height - pad, pad);
  const finiteCount = values.filter(finite).length;
  if (finiteCount === 1) {
    const v = values.find(finite) as number;
    return pathFor([
      { x: 0, y: y(v) },
      { x: width, y: y(v) }
    ]);
  }
  const x = linearScale(0, values.length - 1, 0, width);
  return pathFor(values.map((v, i) => (finite(v) ? { x: x(i), y: y(v) } : null)));
}

/** About `count` round tick values covering [lo, hi] (1, 2, 5 × 10^k steps). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!finite(lo) || !finite(hi)) {
    return [];
  }
  if (lo > hi) {
    [lo, hi] = [hi, lo];
  }
  if (lo === hi) {
    return [lo];
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = Number((raw / mag).toPrecision(10));
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const first = Math.ceil(lo / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = first; v <= hi + step * 1e-9; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

/** A tick label: "0.001", "2.5", "1.2k", "3e-5". */
export function tickLabel(v: number): string {
  if (v === 0) {
    return '0';
  }
  const a = Math.abs(v);
  if (a >= 10000) {
    return `${Number((v / 1000).toPrecision(3))}k`;
  }
  if (a < 1e-3) {
    return v.toExponential(0);
  }
  return String(Number(v.toPrecision(4)));
}

export interface IChartOptions {
  width: number;
  height: number;
  margin: { top: number; right: number; bottom: number; left: number };
}

export interface ITick {
  value: number;
  pos: number;
  label: string;
}

export interface IChartGeometry {
  /** Path of the training loss. */
  lossPath: string;
  /** Number of loss points drawn (finite values). */
  lossPoints: number;
  /** Eval-loss dots. */
  evalDots: IPoint[];
  /** Path of the learning rate on the right axis ("" without one). */
  lrPath: string;
  /** Path of another run's loss drawn over this one, on the same axes ("" without one). */
  overlayPath: string;
  /** Number of the other run's loss points drawn. */
  overlayPoints: number;
  xTicks: ITick[];
  yTicks: ITick[];
  lrTicks: ITick[];
  /** Plot area. */
  plot: { x0: number; x1: number; y0: number; y1: number };
  empty: boolean;
}

function finitePairs(series: ChartSeries | undefined): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const pair of series ?? []) {
    if (Array.isArray(pair) && finite(pair[0]) && finite(pair[1])) {
      out.push([pair[0], pair[1]]);
    }
  }
  return out;
}

export const DEFAULT_CHART: IChartOptions = {
  width: 640,
  height: 240,
  margin: { top: 12, right: 56, bottom: 28, left: 52 }
};

/**
 * Lay out the loss chart: loss as a line and eval loss as dots on the left axis (shared scale),
 * the learning rate as a line on the right axis, steps on the x axis; `overlay` (another run's loss) on the same axes.
 */
export function chartGeometry(
  series: { readonly [name: string]: ChartSeries | undefined },
  opts: IChartOptions = DEFAULT_CHART,
  overlay?: ChartSeries
): IChartGeometry {
  const loss = finitePairs(series.loss);
  const other = finitePairs(overlay);
  const evals = finitePairs(series.eval_loss);
  const lr = finitePairs(series.learning_rate);
  const { width, height, margin } = opts;
  const plot = {
    x0: margin.left,
    x1: width - margin.right,
    y0: margin.top,
    y1: height - margin.bottom
  };
  const xExt = extent([...loss, ...evals, ...lr, ...other].map(p => p[0]));
  const yExt = extent([...loss, ...evals, ...other].map(p => p[1]));
  const empty = loss.length === 0 && evals.length === 0 && other.length === 0;
  const geometry: IChartGeometry = {
    lossPath: '',
    lossPoints: loss.length,
    evalDots: [],
    lrPath: '',
    overlayPath: '',
    overlayPoints: other.length,
    xTicks: [],
    yTicks: [],
    lrTicks: [],
    plot,
    empty
  };
  if (xExt === null) {
    return geometry;
  }
  const x = linearScale(xExt[0], xExt[1], plot.x0, plot.x1);
  geometry.xTicks = niceTicks(xExt[0], xExt[1], 5).map(v => ({
    value: v,
    pos: x(v),
    label: tickLabel(v)
  }));
  if (yExt !== null) {
    // Pad the loss range by 5% so the line does not touch the frame.
    const pad = (yExt[1] - yExt[0]) * 0.05;
    const lo = yExt[0] - pad;
    const hi = yExt[1] + pad;
    const y = linearScale(lo, hi, plot.y1, plot.y0);
    geometry.lossPath = pathFor(loss.map(([s, v]) => ({ x: x(s), y: y(v) })));
    geometry.evalDots = evals.map(([s, v]) => ({ x: x(s), y: y(v) }));
    geometry.overlayPath = pathFor(other.map(([s, v]) => ({ x: x(s), y: y(v) })));
    geometry.yTicks = niceTicks(lo, hi, 4).map(v => ({
      value: v,
      pos: y(v),
      label: tickLabel(v)
    }));
  }
  const lrExt = extent(lr.map(p => p[1]));
  if (lrExt !== null) {
    const y2 = linearScale(lrExt[0] === lrExt[1] ? 0 : lrExt[0], lrExt[1], plot.y1, plot.y0);
    geometry.lrPath = pathFor(lr.map(([s, v]) => ({ x: x(s), y: y2(v) })));
    const lo = lrExt[0] === lrExt[1] ? 0 : lrExt[0];
    geometry.lrTicks = niceTicks(lo, lrExt[1], 3).map(v => ({
      value: v,
      pos: y2(v),
      label: tickLabel(v)
    }));
  }
  return geometry;
}
