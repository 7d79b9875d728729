#!/usr/bin/env bash
# Runs every fuzz target of the module (the wire decoders, the topic parser, the device ACL, all
# in fleet/wire) for the given -fuzztime each, default 30s: `make fuzz` for a long run, the test
# command for a short one on every change. New inputs that fail are saved under the package's
# testdata/fuzz, where `go test` replays them from then on.
#
# A count (50000x) instead of a duration avoids a race in Go 1.26's fuzzing coordinator
# (go.dev/issue/75804, fixed in 1.27): a duration that runs out while a worker is busy fails the
# target with "context deadline exceeded" although no input failed. The test command uses one.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-30s}

# The targets are found in the test files' source: `go test -list` would build the tests of every
# package of the module to list them, which cost more than the short pass itself (about two
# minutes of a busy 2-core machine, for the 8 targets of one package).
go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*\*testing\.F).*/\1/p' "$dir"/*_test.go 2>/dev/null); do
		echo "fuzz $pkg $target for $fuzztime"
		go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime"
	done
done
