#!/usr/bin/env bash
# Runs the benchmarks of issue 8 (`make bench`): installs Debian's mosquitto broker if it is
# missing (the ceiling the hub is compared with), starts the development InfluxDB (and stops
# it again afterwards if it was not running), builds bin/lockerhub and bin/edge-agent and runs
# the load generator in scripts/bench, which starts a fresh hub per scenario on 127.0.0.1 and
# writes var/bench/results.json and var/bench/results.md.
#
# Sizes, from the environment (defaults are issue 8's):
#   BENCH_SCENARIOS        ingest,burst,ceiling,commands,connections,agent
#   BENCH_UNITS            ingest units (200)           BENCH_MESSAGES        per unit (500)
#   BENCH_BURST_UNITS      burst units (300)            BENCH_BURST_MESSAGES  per unit (1000)
#   BENCH_WINDOW           unacknowledged messages per unit (32)
#   BENCH_COMMAND_UNITS    connected units of each commands run (1000,10000)
#   BENCH_UNLOCKS          unlocks per commands run (3000)
#   BENCH_UNLOCK_RATE      unlocks per second (40)
#   BENCH_CONNECTION_UNITS units connecting at once (10000); they connect from 127.0.0.2-127.0.0.9
#                          (-connection-sources), so 50000 is within the ephemeral ports, but the hub
#                          and the load generator each need a file descriptor per unit: 50000 needs
#                          `ulimit -Hn` of at least 51024 (the hub keeps 1024 for itself)
#   BENCH_AGENT_DURATION   how long the agent is measured idle, then publishing (30s)
# The cluster scenario (hubs on Mosquitto and PostgreSQL, issue 9) runs only when named, as it
# adds about 2.5 minutes: BENCH_SCENARIOS=cluster make bench. It runs on a PostgreSQL of its own
# (var/bench/postgres, port BENCH_POSTGRES_PORT, default 5434, started and stopped here) so
# that the server's CPU is the cluster's alone, not that of tests using the development one.
#   BENCH_CLUSTER_HUBS       hubs of each ingest run (1,2); unlocks go through the largest
#   BENCH_CLUSTER_UNITS      ingest units, and background publishers of the unlocks (200)
#   BENCH_CLUSTER_MESSAGES   per ingest unit (500)
#   BENCH_CLUSTER_RESPONDERS units answering unlocks (1000)
#   BENCH_CLUSTER_UNLOCKS    unlocks per phase, without and with background telemetry (2000)
# Extra arguments go to the load generator (go run ./scripts/bench -help), for example
# -cpuprofile var/bench/bench.pprof or -keep-db. A quick run:
#   BENCH_UNITS=20 BENCH_MESSAGES=100 BENCH_BURST_UNITS=30 BENCH_BURST_MESSAGES=100 \
#   BENCH_COMMAND_UNITS=200 BENCH_UNLOCKS=100 BENCH_CONNECTION_UNITS=500 BENCH_AGENT_DURATION=5s make bench
# The hubs serve Go's profiler: while a scenario runs, `go tool pprof http://ADDR/debug/pprof/profile`
# with the hub's HTTP address from the scenario's progress line.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/mosquitto ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing mosquitto" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
fi
cleanup=()
trap 'for c in "${cleanup[@]}"; do $c || true; done' EXIT
if ! scripts/influxdb.sh status >/dev/null 2>&1; then
	scripts/influxdb.sh start
	cleanup+=("scripts/influxdb.sh stop")
fi
scenarios="${BENCH_SCENARIOS:-ingest,burst,ceiling,commands,connections,agent}"
postgres_args=()
case ",$scenarios," in
*,cluster,*)
	export LOCKERHUB_POSTGRES_DIR=var/bench/postgres LOCKERHUB_POSTGRES_PORT="${BENCH_POSTGRES_PORT:-5434}"
	if ! scripts/postgres.sh status >/dev/null 2>&1; then
		scripts/postgres.sh start
		cleanup+=("scripts/postgres.sh stop")
	fi
	postgres_args=(-postgres "$(scripts/postgres.sh url)")
	;;
esac
go build -o bin/ ./cmd/lockerhub ./edge-agent
go run ./scripts/bench \
	-scenarios "$scenarios" \
	-units "${BENCH_UNITS:-200}" -messages "${BENCH_MESSAGES:-500}" \
	-burst-units "${BENCH_BURST_UNITS:-300}" -burst-messages "${BENCH_BURST_MESSAGES:-1000}" \
	-window "${BENCH_WINDOW:-32}" \
	-command-units "${BENCH_COMMAND_UNITS:-1000,10000}" -unlocks "${BENCH_UNLOCKS:-3000}" \
	-unlock-rate "${BENCH_UNLOCK_RATE:-40}" -connection-units "${BENCH_CONNECTION_UNITS:-10000}" \
	-agent-duration "${BENCH_AGENT_DURATION:-30s}" \
	-cluster-hubs "${BENCH_CLUSTER_HUBS:-1,2}" -cluster-units "${BENCH_CLUSTER_UNITS:-200}" \
	-cluster-messages "${BENCH_CLUSTER_MESSAGES:-500}" -cluster-responders "${BENCH_CLUSTER_RESPONDERS:-1000}" \
	-cluster-unlocks "${BENCH_CLUSTER_UNLOCKS:-2000}" "${postgres_args[@]}" \
	-mosquitto /usr/sbin/mosquitto -out var/bench "$@"
