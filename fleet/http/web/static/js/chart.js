// Time-series charts with the vendored uPlot (the global uPlot), sized to their container, each
// with a text summary of its series for those who cannot see the canvas.

import { fill, h } from './dom.js';

// Series colours, each at least 4.5:1 against the white chart background.
const PALETTE = ['#1d4ed8', '#b45309', '#047857', '#7e22ce', '#0e7490', '#be185d', '#4d7c0f', '#475569'];
const LIMIT_COLOUR = '#b91c1c';
const HEIGHT = 220;
// Readings a series keeps while it follows the live stream, on top of sliding its period: a
// page left open on a long period must not grow without bound (a unit reports every 10 s or so).
const MAX_POINTS = 5000;

/**
 * align merges series of points [{t: ISO, v}] stamped at different times into uPlot's columns:
 * [times in seconds, values of each series or null where it has none].
 */
export function align(series) {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => Date.parse(p.t) / 1000)))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const columns = series.map((s) => {
    const col = new Array(times.length).fill(null);
    for (const p of s.points) col[index.get(Date.parse(p.t) / 1000)] = p.v;
    return col;
  });
  return [times, ...columns];
}

/**
 * TimeChart draws series ({label, points}) in a figure: a uPlot canvas and, under it, the
 * latest, lowest and highest value of each series in text. format(v) reads a value (axis,
 * legend, summary). limit ({value, label}) draws a dashed line, and the summary counts the
 * windows above it. range: [min, max] of the y axis, or null to fit the data.
 */
export class TimeChart {
  constructor({ title, format, limit = null, range = null }) {
    this.format = format;
    this.limit = limit;
    this.range = range;
    this.plot = null;
    this.series = []; // [{label, points}], as drawn and followed since
    this.window = null; // {from, to}: the period shown, in epoch milliseconds
    this.canvas = h('div', { class: 'chart-canvas' });
    this.summary = h('ul', { class: 'chart-summary' });
    this.status = h('p', { class: 'chart-status', role: 'status' }, 'Loading…');
    this.el = h('figure', { class: 'chart', dataset: { state: 'loading' } },
      h('figcaption', {}, title), this.status, this.canvas, this.summary);
    this.resize = new ResizeObserver(() => this.plot?.setSize(this.size()));
    this.resize.observe(this.canvas);
  }

  size() {
    return { width: Math.max(200, this.canvas.clientWidth), height: HEIGHT };
  }

  /** loading marks the chart as waiting for data (keeping the last plot until it comes). */
  loading() {
    this.el.dataset.state = 'loading';
    this.status.textContent = 'Loading…';
    this.status.hidden = false;
  }

  /** failed shows why there is no chart (an ApiError's text). */
  failed(message) {
    this.destroyPlot();
    fill(this.summary);
    this.el.dataset.state = 'error';
    this.status.textContent = `No history: ${message}`;
    this.status.hidden = false;
  }

  /** draw shows the series over [from, to] (Date). */
  draw(series, from, to) {
    const fmt = (v) => (v == null ? '–' : this.format(v));
    const uSeries = [{}, ...series.map((s, i) => ({
      label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: false, value: (u, v) => fmt(v),
    }))];
    if (this.limit) {
      uSeries.push({ label: this.limit.label, stroke: LIMIT_COLOUR, width: 1.5, dash: [6, 4], spanGaps: true, points: { show: false }, value: () => this.format(this.limit.value) });
    }
    this.series = series.map((s) => ({ label: s.label, points: [...s.points] }));
    this.window = { from: from.getTime(), to: to.getTime() };
    this.destroyPlot();
    const uPlot = globalThis.uPlot;
    if (!uPlot) {
      this.failed('the chart library did not load');
      return;
    }
    this.plot = new uPlot({
      ...this.size(),
      series: uSeries,
      scales: {
        // Read at every redraw, so that following the stream slides the period.
        x: { time: true, range: () => [this.window.from / 1000, this.window.to / 1000] },
        y: { range: (u, lo, hi) => this.yRange(lo, hi) },
      },
      axes: [{}, { size: 64, values: (u, ticks) => ticks.map(fmt) }],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    }, this.data(), this.canvas);
    this.shown();
  }

  /**
   * follow adds the readings a unit just reported, values[i] for series i (null where it has
   * none), taken at t (epoch milliseconds), and slides the period to end there: the chart of a
   * unit being watched moves with it between two loads of its history. Readings that leave the
   * period are dropped.
   */
  follow(t, values) {
    if (!this.plot) return; // not drawn yet, or failed: the next load brings the reading
    const to = Math.max(t, this.window.to);
    const from = to - (this.window.to - this.window.from);
    const at = new Date(t).toISOString();
    this.series.forEach((s, i) => {
      const v = values[i];
      if (typeof v === 'number' && Number.isFinite(v)) s.points.push({ t: at, v });
      const keep = s.points.findIndex((p) => Date.parse(p.t) >= from);
      s.points.splice(0, keep < 0 ? s.points.length : Math.max(keep, s.points.length - MAX_POINTS));
    });
    this.window = { from, to };
    this.plot.setData(this.data());
    this.shown();
  }

  /** data is uPlot's columns for the series, and the limit from one end of the period to the other. */
  data() {
    const all = [...this.series];
    if (this.limit) {
      all.push({ label: this.limit.label, points: [this.window.from, this.window.to].map((t) => ({ t: new Date(t).toISOString(), v: this.limit.value })) });
    }
    return align(all);
  }

  /** shown updates the state, status and summary after the plot changed. data-points counts
   * the readings of each series, for tests and whoever inspects the page. */
  shown() {
    const readings = this.series.some((s) => s.points.length);
    this.el.dataset.state = readings ? 'ready' : 'empty';
    this.el.dataset.points = this.series.map((s) => s.points.length).join(' ');
    this.status.textContent = readings ? '' : 'No readings in this period.';
    this.status.hidden = readings;
    this.summarize(this.series);
  }

  /** yRange fits the data, keeping the limit line and any fixed range in view. */
  yRange(lo, hi) {
    if (this.range) return this.range;
    let low = lo ?? 0;
    let high = hi ?? 1;
    if (this.limit) {
      low = Math.min(low, this.limit.value);
      high = Math.max(high, this.limit.value);
    }
    const pad = Math.max(0.5, (high - low) * 0.1);
    return [Math.floor(low - pad), Math.ceil(high + pad)];
  }

  summarize(series) {
    fill(this.summary, series.map((s) => {
      const values = s.points.map((p) => p.v);
      if (!values.length) return h('li', {}, `${s.label}: no readings`);
      const above = this.limit ? values.filter((v) => v > this.limit.value).length : 0;
      return h('li', {}, `${s.label}: latest ${this.format(values.at(-1))}, `
        + `lowest ${this.format(Math.min(...values))}, highest ${this.format(Math.max(...values))}`
        + (this.limit ? `; above ${this.format(this.limit.value)} in ${above} of ${values.length} intervals` : ''));
    }));
  }

  destroyPlot() {
    this.plot?.destroy();
    this.plot = null;
  }

  destroy() {
    this.resize.disconnect();
    this.destroyPlot();
  }
}
