// Open alerts across the fleet in the token's scope: most severe first, then the longest open,
// with acknowledge and resolve, kept current from the event stream.

import { request } from '../api.js';
import { announce, fill, h } from '../dom.js';
import { AlertTable } from '../alerttable.js';

// How many open alerts one page loads: the API's maximum.
const LIMIT = 1000;

export function mount(main, { caps, live, title }) {
  title('Alerts');
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const counts = h('p', { class: 'totals' }, 'Loading…');
  const table = new AlertTable({ caption: 'Open alerts, most severe first, then the longest open', caps, onChange: count });
  fill(main,
    h('h1', { tabindex: -1 }, 'Alerts'),
    h('p', { class: 'muted' }, 'Firing and acknowledged alerts, most severe first, then the longest open.'),
    error, counts, table.el);

  function count(t) {
    const all = [...t.alerts.values()];
    const firing = all.filter((a) => a.state === 'firing').length;
    counts.textContent = `${all.length} open: ${firing} firing, ${all.length - firing} acknowledged.`;
  }

  async function refresh() {
    const { alerts } = await request(`alerts?state=open&limit=${LIMIT}`);
    table.set(alerts);
    error.hidden = true;
  }

  refresh().catch((err) => {
    error.textContent = err.text ?? err.message;
    error.hidden = false;
  });
  live({
    poll: refresh,
    handlers: {
      alert({ event, alert }) {
        table.apply(alert);
        if (event === 'fired') announce(`New ${alert.severity} alert: ${alert.rule} on ${alert.device}.`);
      },
    },
  });

  const ticker = setInterval(() => table.tick(), 30000);
  return () => clearInterval(ticker);
}
