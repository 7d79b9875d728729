// Modal dialogs: a native <dialog> opened with showModal (the page behind is inert, Escape
// closes it), with Tab kept inside it and focus given back to what opened it.

import { h, uid } from './dom.js';

const FOCUSABLE = 'button, [href], input, select, textarea, [tabindex]:not([tabindex="-1"])';

/**
 * openDialog shows a modal form: a title, content nodes (fields with their labels), Cancel and
 * a confirm button. onConfirm() runs on submit: when it resolves the dialog closes; when it
 * throws, its message (an ApiError's text) is shown in the dialog, which stays open so the user
 * can correct or cancel. On closing, the focus goes to returnFocus() when it names an element
 * on the page, else back to what had it before, else to the main content. Returns the <dialog>.
 */
export function openDialog({ title, content = [], confirmLabel = 'Confirm', danger = false, onConfirm = async () => {}, returnFocus = () => null }) {
  const opener = document.activeElement;
  const titleId = uid('dialog-title');
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const confirm = h('button', { type: 'submit', class: danger ? 'button danger' : 'button' }, confirmLabel);
  const cancel = h('button', { type: 'button', class: 'button secondary' }, 'Cancel');
  const form = h('form', { class: 'dialog-form' },
    h('h2', { id: titleId }, title),
    content,
    error,
    h('div', { class: 'dialog-actions' }, cancel, confirm));
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId }, form);

  cancel.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    dialog.remove();
    const target = [returnFocus(), opener].find((el) => el?.isConnected);
    (target ?? document.getElementById('main')).focus();
  });
  dialog.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab') return;
    const items = [...dialog.querySelectorAll(FOCUSABLE)].filter((el) => !el.disabled && el.getClientRects().length);
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  });
  // Busy is shown with aria-disabled rather than disabled: disabling the focused button would
  // drop the keyboard focus out of the dialog.
  let busy = false;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (busy || !form.reportValidity()) return;
    busy = true;
    confirm.setAttribute('aria-disabled', 'true');
    error.hidden = true;
    try {
      await onConfirm();
      dialog.close();
    } catch (err) {
      error.textContent = err.text ?? err.message;
      error.hidden = false;
    } finally {
      busy = false;
      confirm.removeAttribute('aria-disabled');
    }
  });

  document.body.append(dialog);
  dialog.showModal();
  // Start on the first field, or on Cancel when there is none: confirming takes a deliberate step.
  (form.querySelector('input, select, textarea') ?? cancel).focus();
  return dialog;
}
