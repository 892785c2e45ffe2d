/**
 * DOM building for the console. Every string becomes a text node or an attribute value: nothing
 * is ever parsed as HTML (no innerHTML, insertAdjacentHTML or document.write anywhere in
 * console/), because function names, log lines, error messages and record values are written by
 * tenants.
 */
export type Child = Node | string | number | null | undefined | false;

export interface Attrs {
  class?: string;
  on?: Partial<Record<keyof HTMLElementEventMap, (event: Event) => void>>;
  [name: string]: unknown;
}

function apply(el: Element, attrs: Attrs): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'on') {
      for (const [type, handler] of Object.entries(value as NonNullable<Attrs['on']>)) el.addEventListener(type, handler as EventListener);
    } else if (value === true) el.setAttribute(name, '');
    else if (value !== undefined && value !== null && value !== false) {
      // No event-handler attributes: handlers go through `on`, so a name cannot smuggle script.
      if (/^on/i.test(name)) throw new Error(`console: refusing attribute ${name}`);
      el.setAttribute(name, String(value));
    }
  }
}

function append(el: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A short, printable form of any value (records are JSON): at most `max` characters. */
export function preview(value: unknown, max = 300): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) text = String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export function fmt(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en');
  return value.toFixed(digits).replace(/\.0+$/, '');
}
