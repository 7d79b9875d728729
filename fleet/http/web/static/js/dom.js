// DOM helpers. Everything the app shows is built with these: text always goes in as text nodes,
// never as markup, so names, reasons and summaries from units and people cannot inject anything
// (the hub's Content-Security-Policy also makes innerHTML throw).

import { actorName } from './format.js';

/**
 * h builds an element: h('a', {href: '#/', class: 'x'}, 'text', child, [more]).
 * Attributes: class, dataset (an object), on<event> (a function, added as a listener; the CSP
 * forbids inline handlers), booleans (true sets an empty attribute, false/null/undefined
 * leaves it out), anything else as a string attribute. Children: strings and numbers become
 * text nodes, nodes are appended, arrays are flattened, null/undefined/false are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** append adds children to el as h does. */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** fill replaces el's children as h would build them. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** cell is a table cell that names its column (data-label), which narrow screens show in front
 * of the content when tables are laid out as cards. */
export function cell(label, ...content) {
  return h('td', { dataset: { label } }, h('div', {}, content));
}

/** actor shows who did something by name, with the id the record keeps on hover and in
 * data-actor: two tokens may share a name, the id tells them apart. */
export function actor(id, name) {
  return h('span', { class: 'actor', title: id, dataset: { actor: id } }, actorName(id, name));
}

let ids = 0;
/** uid returns a page-unique id for label/aria wiring. */
export function uid(prefix = 'id') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** announce says text to screen readers through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  // Clearing first makes the same message be read again when it repeats.
  region.textContent = '';
  setTimeout(() => { region.textContent = text; }, 50);
}

/** keyed keeps the children of a container in the order of items, reusing the element of each
 * key, so that live updates do not rebuild (and unfocus) what the user is on. make(item) builds a
 * new element, update(el, item) refreshes an existing one. */
export function keyed(container, items, key, make, update) {
  const old = new Map();
  for (const el of container.children) old.set(el.dataset.key, el);
  let i = 0;
  for (const item of items) {
    const k = String(key(item));
    let el = old.get(k);
    if (el) {
      update(el, item);
      old.delete(k);
    } else {
      el = make(item);
      el.dataset.key = k;
    }
    // Move only what is out of place: moving a focused element would blur it.
    if (container.children[i] !== el) container.insertBefore(el, container.children[i] ?? null);
    i += 1;
  }
  for (const el of old.values()) el.remove();
}
