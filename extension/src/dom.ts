/** Tiny DOM helpers for the views. */

const SVG_NS = 'http://www.w3.org/2000/svg';

type Attrs = { [name: string]: string | number | boolean | null | undefined };

function setAttrs(el: Element, attrs: Attrs): void {
  for (const name of Object.keys(attrs)) {
    const v = attrs[name];
    if (v === null || v === undefined || v === false) {
      continue;
    }
    el.setAttribute(name, v === true ? '' : String(v));
  }
}

type Child = Node | string | null | undefined | false;

/** `el` with `attrs` set and `children` appended (null, undefined and false skipped). */
function fill<E extends Element>(el: E, attrs: Attrs, children: Child[]): E {
  setAttrs(el, attrs);
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(child);
    }
  }
  return el;
}

/** Create an HTML element: `h('div', {class: 'x'}, 'text', child)`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  return fill(el, attrs, children);
}

/** Create an SVG element. */
export function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  return fill(el, attrs, children);
}

/** A button that runs `onClick` without letting the click reach its parents. */
export function button(className: string, label: string, onClick: () => void, title = ''): HTMLButtonElement {
  const b = h('button', { class: `jp-LoraNb-button ${className}`, type: 'button', title: title || null }, label);
  b.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return b;
}

/** The parts of a view, each rendered again only when its data changed (keeps focus, scroll and selection stable). */
export class Parts {
  /** Run `render` when `data` differs from what part `part` last showed. */
  update(part: string, data: unknown, render: () => void): void {
    const key = JSON.stringify(data ?? null);
    if (this._keys.get(part) !== key) {
      this._keys.set(part, key);
      render();
    }
  }

  private _keys = new Map<string, string>();
}
