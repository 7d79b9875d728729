// How parcels read on screen, for the parcels view, the unit page and the overview. A parcel
// as the hub shows it has no pickup code (the hub keeps only its hash), and nothing here would
// show one.

import { duration } from './format.js';

const STATUS_LABELS = {
  'awaiting-dropoff': 'Reserved', 'in-locker': 'In locker', 'picked-up': 'Picked up',
  retrieved: 'Retrieved', expired: 'Code expired', cancelled: 'Cancelled',
};

/** statusLabel reads a parcel's status. */
export function statusLabel(s) {
  return STATUS_LABELS[s] ?? s;
}

const KIND_LABELS = { dry: 'Dry', fridge: 'Fridge', freezer: 'Freezer' };

/** compartmentLabel reads a compartment kind. */
export function compartmentLabel(k) {
  return KIND_LABELS[k] ?? k;
}

/** COMPARTMENTS lists the kinds in the hub's order. */
export const COMPARTMENTS = ['dry', 'fridge', 'freezer'];

/** dwellText is how long a parcel has been inside ("–" for a reservation). */
export function dwellText(p) {
  return p.dropped_at ? duration(p.dwell_seconds * 1000) : '–';
}

/** carrierText is a parcel's carrier, or a dash without one. */
export function carrierText(p) {
  return p.carrier || '–';
}
