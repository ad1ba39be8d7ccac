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

/** Create an HTML element: `h('div', {class: 'x'}, 'text', child)`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Array<Node | string | null | undefined | false>
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.append(child);
  }
  return el;
}

/** Create an SVG element. */
export function s(
  tag: string,
  attrs: Attrs = {},
  ...children: Array<Node | string | null | undefined | false>
): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  setAttrs(el, attrs);
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.append(child);
  }
  return el;
}

/** A button that runs `onClick` without letting the click reach its parents. */
export function button(
  className: string,
  label: string,
  onClick: () => void,
  title = ''
): HTMLButtonElement {
  const b = h('button', { class: `jp-LoraNb-button ${className}`, type: 'button', title: title || null }, label);
  b.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return b;
}
