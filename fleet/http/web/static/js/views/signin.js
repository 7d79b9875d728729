// Sign-in: an API token, checked against the hub and kept in this tab's sessionStorage.

import { capabilities, request, session } from '../api.js';
import { h, uid } from '../dom.js';

export function mount(main, { notice, onSignedIn }) {
  document.title = 'Sign in · lockerhub';
  const tokenId = uid('token');
  const hintId = uid('hint');
  const showId = uid('show');
  const token = h('input', {
    id: tokenId, name: 'token', type: 'password', required: true, autocomplete: 'off',
    autocapitalize: 'off', spellcheck: 'false', 'aria-describedby': hintId,
  });
  const show = h('input', { id: showId, type: 'checkbox' });
  show.addEventListener('change', () => { token.type = show.checked ? 'text' : 'password'; });
  const message = h('p', { class: notice?.kind === 'error' ? 'error' : 'notice', role: notice?.kind === 'error' ? 'alert' : 'status' }, notice?.text);
  message.hidden = !notice;
  const submit = h('button', { type: 'submit', class: 'button' }, 'Sign in');
  const form = h('form', { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', tabindex: -1 }, 'Sign in'),
    message,
    h('div', { class: 'field' },
      h('label', { for: tokenId }, 'API token'),
      token,
      h('p', { class: 'hint', id: hintId },
        'A token from ', h('code', {}, 'lockerhub token create'),
        '. It stays in this browser tab only and is forgotten when you close the tab or sign out.')),
    h('div', { class: 'field checkbox' }, show, h('label', { for: showId }, 'Show token')),
    submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = token.value.trim();
    if (!value || submit.hasAttribute('aria-disabled')) return;
    submit.setAttribute('aria-disabled', 'true');
    message.hidden = true;
    try {
      await request('health', { token: value }); // 401 for a wrong, unknown or revoked token
      session.save({ token: value, caps: await capabilities(value) });
      onSignedIn();
    } catch (err) {
      message.className = 'error';
      message.setAttribute('role', 'alert');
      message.textContent = err.status === 401 ? `The hub refused this token: ${err.message}` : (err.text ?? err.message);
      message.hidden = false;
      token.focus();
    } finally {
      submit.removeAttribute('aria-disabled');
    }
  });

  main.replaceChildren(form);
  token.focus();
}
