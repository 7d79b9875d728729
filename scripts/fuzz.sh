#!/usr/bin/env bash
# Runs every fuzz target of the module (the wire decoders, the topic parser, the device ACL, all
# in fleet/wire) for the given time each, default 30s: `make fuzz` for a long run, the test
# command for a short one on every change. New inputs that fail are saved under the package's testdata/fuzz, where
# `go test` replays them from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-30s}

for pkg in $(go list ./...); do
	for target in $(go test "$pkg" -list '^Fuzz' | grep '^Fuzz' || true); do
		echo "fuzz $pkg $target for $fuzztime"
		go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime"
	done
done
