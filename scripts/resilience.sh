#!/usr/bin/env bash
# Runs the resilience suite of issue 8 (`make resilience`): builds bin/lockerhub and influxd if
# missing, then runs scripts/resilience, which starts its own InfluxDB (var/resilience/influxdb,
# on a free port: the outage case stops it, so it must not be the shared development one) and
# a fresh hub per case, all on 127.0.0.1, and writes var/resilience/results.{json,md} and
# var/resilience/soak.svg. Exit status 1 if any case fails.
#
# Environment:
#   RESILIENCE_SOAK     length of the soak (default 10m)
#   RESILIENCE_CASES    influx-outage,hub-kill,flood,fd-exhaustion,identity,malformed,soak
#                       (default: all; fd-exhaustion needs prlimit, from util-linux)
# Extra arguments go to the suite (go run ./scripts/resilience -help). A quick run of every
# case, a few minutes:
#   RESILIENCE_SOAK=30s make resilience
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/influxdb.sh install
go build -o bin/ ./cmd/lockerhub
# The suite stops its InfluxDB itself; this covers a suite that dies before it can.
trap 'LOCKERHUB_INFLUX_DIR=var/resilience/influxdb scripts/influxdb.sh stop >/dev/null' EXIT
go run ./scripts/resilience \
	-cases "${RESILIENCE_CASES:-influx-outage,hub-kill,flood,fd-exhaustion,identity,malformed,soak}" \
	-soak "${RESILIENCE_SOAK:-10m}" -out var/resilience "$@"
