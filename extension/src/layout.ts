/** Layout helpers for where the run viewer opens. */
import { SplitPanel, Widget } from '@lumino/widgets';
import { grownSizes } from './format';

/**
 * Give `widget` at least `share` of the split panel it sits in: Notebook 7 opens its bottom area collapsed to its tab
 * bar (35 px), so a viewer added there would show nothing. Returns whether it grew.
 */
export function growInSplit(widget: Widget, share = 0.5): boolean {
  let child: Widget = widget;
  while (child.parent && !(child.parent instanceof SplitPanel)) {
    child = child.parent;
  }
  const split = child.parent;
  if (!(split instanceof SplitPanel)) {
    return false;
  }
  const sizes = grownSizes(split.relativeSizes(), split.widgets.indexOf(child), share);
  if (sizes) {
    split.setRelativeSizes(sizes);
  }
  return sizes !== null;
}
