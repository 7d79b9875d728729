// Package fleet holds lockerhub's domain: devices (locker banks and refrigerated units), their
// presence, and the services that manage them. It imports only the standard library and the wire
// contract; adapters live in subpackages named after what they wrap (fleet/sqldb, fleet/http), and
// only main packages wire them together.
//
// # Data belongs to a registration, not to an id
//
// A device id is reusable: a unit is removed and its id registered again, often at another
// site, for another customer. Everything the hub records about a unit (its commands with their
// actors and reasons, its alerts, its telemetry history, its live state and connection) belongs
// to one registration of the id and is never shown for a later one: a site's tokens must not
// read what a unit of another site did under the same id. A registration has
//
//   - an identity, Device.Registration, which the store gives it and records on every command
//     and alert made during it. It is a random id rather than the creation time because two
//     registrations of an id can share a millisecond (a script, a clock stepped back) and the
//     hubs of a cluster create them without talking to each other;
//   - a start, Device.CreatedAt, from which its telemetry history is read. Points in InfluxDB
//     carry the device id and no registration, so a time bound is what tells apart the units
//     that held an id in turn. A registration tag on every point would be exact, but it costs
//     every point about 45 bytes in the spool and in InfluxDB, and the points written before it
//     existed would still need the time bound. The bound's limits: readings a unit took before
//     it was registered are not its history, and points of the removed unit stamped after the
//     new registration (its edge clock ahead of the hub's, or a removal and re-registration
//     within registry.watch_interval while it was still sending) would show.
//
// Readers ask for the current registration's data (CommandFilter.Current, AlertFilter.Current,
// HistoryQuery.Since, Compartment.Since, LiveStateService.LiveState of the device), and the API
// answers a command or alert of an ended registration as not found. The health rules resolve a
// removed registration's open alerts when they learn of the removal (fleet/alerts), and a new
// registration's live state starts empty. The audit trail is the exception: it is the chained
// history of the id, read by unscoped admins, and keeps every registration's entries.
package fleet
