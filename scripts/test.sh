#!/usr/bin/env bash
# Runs every check and test of the project: formatting, vet, and the whole Go test suite with
# the race detector, including the broker tests against Debian's mosquitto clients and the
# end-to-end tests of the real lockerhub binary. `make test` runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-deps.sh

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './var/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 10m ./... "$@"
