// How values read on screen: health, severities, ages, temperatures, times.

/** Unit health, worst first, with how it reads. */
export const HEALTHS = ['critical', 'offline', 'warning', 'ok'];
const HEALTH_LABELS = { ok: 'OK', warning: 'Warning', critical: 'Critical', offline: 'Offline' };

/** healthLabel is the text shown with a health's colour (never the colour alone). */
export function healthLabel(health) {
  return HEALTH_LABELS[health] ?? 'Disabled'; // a disabled unit has no health
}

/** Alert severities, most urgent first (as the hub ranks them). */
export const SEVERITIES = ['critical', 'major', 'minor', 'warning'];

export function severityRank(s) {
  const i = SEVERITIES.indexOf(s);
  return i < 0 ? SEVERITIES.length : i;
}

export function capitalize(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : '';
}

/** duration reads milliseconds as "just now", "12 min", "3 h 5 min", "2 d 4 h". */
export function duration(ms) {
  const min = Math.floor(ms / 60000);
  if (min < 1) return 'under 1 min';
  if (min < 60) return `${min} min`;
  const hours = Math.floor(min / 60);
  if (hours < 24) return min % 60 ? `${hours} h ${min % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

/** age is how long ago an ISO time was, as duration reads it. */
export function age(iso, now = Date.now()) {
  return duration(Math.max(0, now - Date.parse(iso)));
}

/** dateTime reads an ISO time (or epoch milliseconds) in the browser's locale. */
export function dateTime(t) {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

/** celsius reads a temperature, or a dash without one. */
export function celsius(v) {
  return typeof v === 'number' && Number.isFinite(v) ? `${v.toFixed(1)} °C` : '–';
}

/** percent reads a fraction 0..1. */
export function percent(v) {
  return typeof v === 'number' && Number.isFinite(v) ? `${Math.round(v * 100)} %` : '–';
}

/** kindLabel names a unit kind; fridges labelled class=freezer are freezers. */
export function kindLabel(device) {
  if (device.kind === 'fridge') return device.labels?.class === 'freezer' ? 'Freezer' : 'Fridge';
  if (device.kind === 'locker-bank') return 'Locker bank';
  return device.kind;
}

/** Food-safety limits of refrigerated compartments (the hub's default temp_above rules). */
export function coldLimit(device) {
  return device.labels?.class === 'freezer' ? -12 : 5;
}

// Who acted, for the actors that are not tokens: the hub's own work and its command line.
const HUB_ACTORS = { hub: 'the hub', cli: 'the command line on the hub', api: 'the API' };

/** actorName reads who did something: a token's name as the record kept it, the hub's own
 * actors in words, a unit by its id, and the token's id alone for records made before names
 * were kept. The id itself goes in a title (see actor in dom.js). */
export function actorName(id, name) {
  if (name) return name;
  if (HUB_ACTORS[id]) return HUB_ACTORS[id];
  if (id?.startsWith('device:')) return `unit ${id.slice('device:'.length)}`;
  return id ?? '';
}

/** presenceText says whether the unit is connected, or since when it is not. */
export function presenceText(d) {
  const p = d.presence ?? {};
  if (!d.enabled) return 'Disabled';
  if (p.online) return 'Online';
  const seen = p.last_seen || p.disconnected_at;
  return seen ? `Offline · last seen ${age(seen)} ago` : 'Offline · not connected since the hub started';
}
