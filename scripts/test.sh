#!/usr/bin/env bash
# Runs every check and test of the project: formatting, a tidy go.mod, vet, and the whole Go
# test suite with the race detector, including the broker tests against Debian's mosquitto
# clients, the telemetry tests against a real InfluxDB, the store's tests against a real
# PostgreSQL (the development servers, each started here and left running if it was already
# running, stopped otherwise) and the end-to-end tests of the real binaries, then a short pass
# of every fuzz target.
# `make test` runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-deps.sh

# The servers this script started, stopped at exit (last started, first stopped).
started=()
stop_started() {
	local i
	for ((i = ${#started[@]} - 1; i >= 0; i--)); do
		"scripts/${started[i]}.sh" stop || true
	done
}
trap stop_started EXIT
for server in influxdb postgres; do
	if ! "scripts/$server.sh" status >/dev/null 2>&1; then
		"scripts/$server.sh" start
		started+=("$server")
	fi
done
# Where the tests find PostgreSQL (internal/testpg), whatever port postgres.sh was told to use.
LOCKERHUB_POSTGRES_URL="$(scripts/postgres.sh url)"
export LOCKERHUB_POSTGRES_URL

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './var/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
# go.mod and go.sum must list exactly what the code imports, so that a dependency added or
# dropped without `go mod tidy` fails here and not in the next person's checkout.
if ! tidy_diff=$(go mod tidy -diff); then
	echo "go.mod/go.sum are not tidy: run go mod tidy. It would change:" >&2
	echo "$tidy_diff" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 10m ./... "$@"
scripts/fuzz.sh 50000x # a short pass (about 2 s each) on every change; make fuzz for a long one
