// Package fleet holds lockerhub's domain: devices (locker banks and refrigerated units), their
// presence, and the services that manage them. It imports only the standard library and the wire
// contract; adapters live in subpackages named after what they wrap (fleet/sqldb, fleet/http), and
// only main packages wire them together.
package fleet
