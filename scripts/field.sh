#!/usr/bin/env bash
# Runs the field trial of issue 16 (`make field`): builds bin/lockerhub and influxd if missing,
# then runs scripts/field, which starts its own InfluxDB (var/field/influxdb, on a free port)
# and, per part, a fresh hub and `lockerhub simulate` against it, all on 127.0.0.1, and writes
# var/field/results.{json,md}. Exit status 1 if a part fails.
#
#   faults  every simulator fault on its own unit, at once, against rules with windows shortened
#           FIELD_SCALE times: delay from fault to alert and from repair to resolve (~15 min)
#   quiet   FIELD_UNITS units with simulated people and no faults for FIELD_DURATION against
#           the default rules: every alert is a false alert
#
# Environment:
#   FIELD_PARTS     faults,quiet (default both)
#   FIELD_DURATION  length of the quiet run (default 1h)
#   FIELD_UNITS     units of the quiet run (default 60)
#   FIELD_SCALE     faults: the rules' windows are divided by this (default 10)
#   FIELD_OUT       where results, logs and the trial's InfluxDB go (default var/field)
# Extra arguments go to the trial (go run ./scripts/field -help; the output directory is
# FIELD_OUT's, so that this script stops the InfluxDB of a trial that died). A short run:
#   FIELD_DURATION=5m make field
set -euo pipefail
cd "$(dirname "$0")/.."
out="${FIELD_OUT:-var/field}"
for arg in "$@"; do
	case "$arg" in
	-out | -out=* | --out | --out=*)
		echo "field.sh: set the output directory with FIELD_OUT, not $arg" >&2
		exit 2
		;;
	esac
done

scripts/influxdb.sh install
go build -o bin/ ./cmd/lockerhub
# The trial stops its InfluxDB itself; this covers a trial that dies before it can.
trap 'LOCKERHUB_INFLUX_DIR="$out/influxdb" scripts/influxdb.sh stop >/dev/null' EXIT
go run ./scripts/field \
	-parts "${FIELD_PARTS:-faults,quiet}" -duration "${FIELD_DURATION:-1h}" \
	-units "${FIELD_UNITS:-60}" -scale "${FIELD_SCALE:-10}" -out "$out" "$@"
