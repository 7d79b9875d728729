#!/usr/bin/env bash
# Development and test InfluxDB (influxd 1.8.10 built from source with `go install`), serving
# the v2 write API and the v1 /query API (InfluxQL) that the hub uses, on loopback only.
#
#   scripts/influxdb.sh install   build var/bin/influxd if it is missing (takes about a minute)
#   scripts/influxdb.sh start     install if needed, start in the background, wait for /ping,
#                                 create the database "lockerhub"; succeeds if already running
#   scripts/influxdb.sh stop      SIGTERM, then SIGKILL after 10 s
#   scripts/influxdb.sh status    "running ..." (exit 0) or "not running ..." (exit 1)
#   scripts/influxdb.sh reset     stop and delete the data directory (data, meta, wal, log)
#
# Everything lives under <repo>/var: the binary in var/bin/influxd, the data in
# var/influxdb/{meta,data,wal}, the pid in var/influxdb/influxd.pid, the log in
# var/influxdb/influxd.log (var/influxdb is LOCKERHUB_INFLUX_DIR when that is set). Configuration: configs/influxdb.conf, with the paths and ports set
# through influxd's INFLUXDB_* environment overrides.
#
# Environment:
#   LOCKERHUB_INFLUX_PORT      HTTP port on 127.0.0.1 (default 8086)
#   LOCKERHUB_INFLUX_RPC_PORT  RPC (backup/restore) port on 127.0.0.1 (default HTTP port + 2)
#   LOCKERHUB_INFLUX_DIR       data directory, absolute or relative to the repository (default
#                              var/influxdb); another directory runs a separate instance, as the
#                              resilience suite does so that it can stop its own InfluxDB without
#                              disturbing the shared one
# One instance per data directory, whatever the port.
#
# Clients: URL http://127.0.0.1:8086, org "", token "" (auth is off), bucket "lockerhub/autogen".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
INFLUXD_VERSION="v1.8.10"
BIN="$ROOT/var/bin/influxd"
CONF="$ROOT/configs/influxdb.conf"
VARDIR="${LOCKERHUB_INFLUX_DIR:-var/influxdb}"
[ "${VARDIR#/}" != "$VARDIR" ] || VARDIR="$ROOT/$VARDIR"
PIDFILE="$VARDIR/influxd.pid"
URLFILE="$VARDIR/influxd.url" # the URL the running influxd was started with
LOG="$VARDIR/influxd.log"
PORT="${LOCKERHUB_INFLUX_PORT:-8086}"
RPC_PORT="${LOCKERHUB_INFLUX_RPC_PORT:-$((PORT + 2))}"
URL="http://127.0.0.1:$PORT"
DB="lockerhub"
START_TIMEOUT=60
STOP_TIMEOUT=10

NAME=influxdb
# shellcheck source=lib/daemon.sh
. "$ROOT/scripts/lib/daemon.sh"

# http METHOD PATH [FORM-DATA]: prints the HTTP status code, and the body to $HTTP_BODY_FILE if
# set; prints 000 if nothing answers. Uses curl, or bash's /dev/tcp where curl is missing.
http() {
	local method=$1 path=$2 data=${3-} out=${HTTP_BODY_FILE:-/dev/null}
	if command -v curl >/dev/null 2>&1; then
		local args=(-s -o "$out" -w '%{http_code}' --max-time 5 -X "$method")
		[ -n "$data" ] && args+=(--data-urlencode "$data")
		curl "${args[@]}" "$URL$path" 2>/dev/null || true
		return 0
	fi
	# Fallback: HTTP/1.0 over /dev/tcp; data must already be form-encoded (k=v, no specials).
	local status="000" line
	if exec 3<>"/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then
		printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s' \
			"$method" "$path" "${#data}" "$data" >&3
		if IFS= read -r -t 5 line <&3; then
			status=$(echo "$line" | awk '{print $2}')
			# Skip headers, keep the body.
			while IFS= read -r -t 5 line <&3 && [ "${line%$'\r'}" != "" ]; do :; done
			cat <&3 >"$out" 2>/dev/null || true
		fi
		exec 3<&- 3>&- || true
	fi
	echo "${status:-000}"
}

pinging() { [ "$(http GET /ping)" = "204" ]; }

# The pid from the pid file if that process is alive and is an influxd.
live_pid() {
	local pid
	[ -f "$PIDFILE" ] || return 1
	pid=$(tr -dc '0-9' <"$PIDFILE")
	alive "$pid" influxd || return 1
	echo "$pid"
}

cmd_install() {
	if [ -x "$BIN" ]; then
		say "$BIN is installed"
		return 0
	fi
	command -v go >/dev/null 2>&1 || die "go is not on PATH: it is needed to build influxd"
	mkdir -p "$ROOT/var/bin"
	say "building influxd $INFLUXD_VERSION from source (takes about a minute):"
	say "  GOBIN=$ROOT/var/bin go install github.com/influxdata/influxdb/cmd/influxd@$INFLUXD_VERSION"
	local t0=$SECONDS
	(cd "$ROOT" && GOBIN="$ROOT/var/bin" GOWORK=off go install "github.com/influxdata/influxdb/cmd/influxd@$INFLUXD_VERSION") ||
		die "go install of influxd $INFLUXD_VERSION failed"
	[ -x "$BIN" ] || die "go install succeeded but $BIN is missing"
	say "installed $BIN in $((SECONDS - t0)) s"
}

create_db() {
	local body status
	body=$(mktemp)
	status=$(HTTP_BODY_FILE="$body" http POST /query "q=CREATE DATABASE $DB")
	if [ "$status" != "200" ] || grep -q '"error"' "$body"; then
		echo "influxdb: CREATE DATABASE $DB failed: HTTP $status: $(cat "$body")" >&2
		rm -f "$body"
		return 1
	fi
	rm -f "$body"
	say "database \"$DB\" exists (bucket \"$DB/autogen\")"
}

cmd_start() {
	local pid
	if pinging; then
		if pid=$(live_pid); then
			say "already running (pid $pid) and answering at $URL"
		else
			say "an InfluxDB not started by this script (no live pid in $PIDFILE) already answers at $URL; using it"
		fi
		create_db
		return 0
	fi
	local started=""
	if pid=$(live_pid); then
		local other
		other=$(cat "$URLFILE" 2>/dev/null || echo "an unknown address")
		[ "$other" = "$URL" ] || die "influxd (pid $pid) of this checkout already runs at $other; stop it first"
		say "influxd (pid $pid) is running but not answering at $URL yet; waiting"
	else
		cmd_install
		mkdir -p "$VARDIR"
		rm -f "$PIDFILE"
		echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) scripts/influxdb.sh start: $URL ===" >>"$LOG"
		local launcher=()
		command -v setsid >/dev/null 2>&1 && launcher=(setsid) # own session: survives the caller's process group
		INFLUXDB_BIND_ADDRESS="127.0.0.1:$RPC_PORT" \
			INFLUXDB_HTTP_BIND_ADDRESS="127.0.0.1:$PORT" \
			INFLUXDB_META_DIR="$VARDIR/meta" \
			INFLUXDB_DATA_DIR="$VARDIR/data" \
			INFLUXDB_DATA_WAL_DIR="$VARDIR/wal" \
			nohup "${launcher[@]}" "$BIN" run -config "$CONF" -pidfile "$PIDFILE" </dev/null >>"$LOG" 2>&1 &
		pid=$!
		started=1
		echo "$pid" >"$PIDFILE"
		echo "$URL" >"$URLFILE"
		say "started influxd (pid $pid), HTTP $URL, RPC 127.0.0.1:$RPC_PORT, data $VARDIR, log $LOG"
	fi
	local deadline=$((SECONDS + START_TIMEOUT))
	until pinging; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PIDFILE"
			log_tail
			die "influxd (pid $pid) exited before answering at $URL/ping"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log_tail
			if [ -n "$started" ]; then
				kill -KILL "$pid" 2>/dev/null || true
				rm -f "$PIDFILE"
				die "influxd (pid $pid) did not answer at $URL/ping within $START_TIMEOUT s; killed it"
			fi
			die "influxd (pid $pid) did not answer at $URL/ping within $START_TIMEOUT s; try scripts/influxdb.sh stop, then start"
		fi
		sleep 0.25
	done
	say "answering at $URL"
	create_db
}

cmd_stop() {
	local pid
	if ! pid=$(live_pid); then
		rm -f "$PIDFILE" "$URLFILE"
		say "not running"
		if pinging; then
			say "note: something not started by this script answers at $URL; left alone"
		fi
		return 0
	fi
	say "stopping influxd (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + STOP_TIMEOUT))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			say "still running after $STOP_TIMEOUT s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.5
			break
		fi
		sleep 0.2
	done
	rm -f "$PIDFILE" "$URLFILE"
	say "stopped"
}

cmd_status() {
	local pid
	if pid=$(live_pid); then
		if pinging; then
			say "running (pid $pid) at $URL"
			return 0
		fi
		say "not running at $URL: influxd (pid $pid, started for $(cat "$URLFILE" 2>/dev/null || echo '?')) is alive but not answering at $URL/ping"
		return 1
	fi
	if pinging; then
		say "running at $URL (not started by this script: no live pid in $PIDFILE)"
		return 0
	fi
	say "not running"
	return 1
}

cmd_reset() {
	cmd_stop
	rm -rf "$VARDIR"
	say "deleted $VARDIR"
}

case "${1-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
reset) cmd_reset ;;
*)
	echo "usage: $0 install|start|stop|status|reset" >&2
	exit 2
	;;
esac
