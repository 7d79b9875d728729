#!/usr/bin/env bash
# Development and test PostgreSQL (Debian's postgresql package, run from this checkout, not as
# the system's cluster), on 127.0.0.1 only, for the store's PostgreSQL engine (store.url).
#
#   scripts/postgres.sh start     create the cluster if needed, start it in the background, wait
#                                 until it accepts connections, create the database "lockerhub";
#                                 succeeds if already running
#   scripts/postgres.sh stop      fast shutdown (clients disconnected), immediate after 30 s
#   scripts/postgres.sh status    "running ..." (exit 0) or "not running ..." (exit 1)
#   scripts/postgres.sh url       print the URL clients use (whether or not it runs)
#   scripts/postgres.sh reset     stop and delete the cluster
#
# Everything lives under <repo>/var/postgres (LOCKERHUB_POSTGRES_DIR when that is set): the
# cluster in data/, the server log in postgres.log. initdb and postgres refuse to run as root, so
# when this script runs as root (as in CI and the development containers) they run as the
# `postgres` system user that the Debian package creates, and the cluster belongs to it.
# That user must be able to reach the cluster: a directory of the checkout's var/ that others
# cannot search (see reachable) is given search permission, any other is named with the fix.
#
# Security: the server listens on 127.0.0.1 only (no Unix socket, no other address) and trusts
# every connection from there without a password. That is acceptable for a development and test
# server on a machine of one's own, and only for that: anyone with a shell on the machine is the
# superuser "lockerhub" of this cluster. Never copy this setup to a hub's real database.
#
# Environment:
#   LOCKERHUB_POSTGRES_PORT  TCP port on 127.0.0.1 (default 5433: 5432 is left to a system cluster)
#   LOCKERHUB_POSTGRES_DIR   cluster directory, absolute or relative to the repository (default
#                            var/postgres); another directory runs a separate instance
#   LOCKERHUB_POSTGRES_BIN   directory of initdb, pg_ctl and psql (default: the newest
#                            /usr/lib/postgresql/*/bin, which Debian does not put on PATH)
#
# Clients: URL postgres://lockerhub@127.0.0.1:5433/lockerhub?sslmode=disable; the tests
# (internal/testpg) create and drop a database of their own per test on the same server.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VARDIR="${LOCKERHUB_POSTGRES_DIR:-var/postgres}"
[ "${VARDIR#/}" != "$VARDIR" ] || VARDIR="$ROOT/$VARDIR"
PGDATA="$VARDIR/data"
LOG="$VARDIR/postgres.log"
PORT="${LOCKERHUB_POSTGRES_PORT:-5433}"
SUPERUSER="lockerhub"
DB="lockerhub"
URL="postgres://$SUPERUSER@127.0.0.1:$PORT/$DB?sslmode=disable"
START_TIMEOUT=60
STOP_TIMEOUT=30
RUN_AS="postgres" # the system user the server runs as when this script runs as root

NAME=postgres
# shellcheck source=lib/daemon.sh
. "$ROOT/scripts/lib/daemon.sh"

bindir() {
	if [ -n "${LOCKERHUB_POSTGRES_BIN:-}" ]; then
		echo "$LOCKERHUB_POSTGRES_BIN"
		return 0
	fi
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] || return 1
	echo "$d"
}

BIN=""
need_bin() {
	[ -n "$BIN" ] && return 0
	BIN=$(bindir) || die "no /usr/lib/postgresql/*/bin: install Debian's postgresql package (scripts/test-deps.sh does)"
	local tool
	for tool in initdb pg_ctl psql pg_isready; do
		[ -x "$BIN/$tool" ] || die "$BIN/$tool is missing or not executable"
	done
}

# unreachable DIR prints the first existing directory on the way from / to DIR that $RUN_AS
# cannot search, and fails if there is none.
unreachable() {
	local path="" part parts
	IFS=/ read -ra parts <<<"$1"
	for part in "${parts[@]}"; do
		[ -n "$part" ] || continue
		path="$path/$part"
		[ -d "$path" ] || return 1
		runuser -u "$RUN_AS" -- test -x "$path" || {
			echo "$path"
			return 0
		}
	done
	return 1
}

# reachable makes sure $RUN_AS can reach $VARDIR. The checkout's var/ is often private: any
# lockerhub command using the default data directory ./var/lockerhub made it 0750 before that
# was fixed, and a umask of 027 or 077 does the same. Such a directory under var/ that this user
# owns gets search permission for others (o+x: they can reach named paths in it, not list it,
# and the files' own modes still apply; the data directory itself stays private); any other
# directory in the way is named, with the fix, since it is not this script's to change.
reachable() {
	local blocked fixed=""
	while blocked=$(unreachable "$VARDIR"); do
		case "$blocked/" in
		"$ROOT/var/"*)
			if [ "$blocked" != "$fixed" ] && [ -O "$blocked" ]; then
				say "$blocked (mode $(stat -c %a "$blocked")) is not searchable by others, so the \"$RUN_AS\" user cannot reach $VARDIR: chmod o+x $blocked" >&2 # seen also where stdout is not
				chmod o+x "$blocked"
				fixed=$blocked
				continue
			fi
			;;
		esac
		die "the \"$RUN_AS\" user cannot reach $VARDIR: $blocked (mode $(stat -c %a "$blocked"), owner $(stat -c %U "$blocked")) is not searchable by others; allow it with chmod o+x $blocked, or set LOCKERHUB_POSTGRES_DIR to a directory that user can reach"
	done
}

# server CMD...: runs a server-side tool (initdb, pg_ctl) as the cluster's owner: this user, or
# $RUN_AS when this is root, since PostgreSQL refuses to run as root.
server() {
	if [ "$(id -u)" -eq 0 ]; then
		reachable
		runuser -u "$RUN_AS" -- "$@"
	else
		"$@"
	fi
}

# psql_admin SQL: runs one statement as the superuser on the maintenance database; prints rows
# unaligned, without headers.
psql_admin() {
	"$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -tA -c "$1"
}

ready() {
	need_bin
	"$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -t 2 >/dev/null 2>&1
}

# The postmaster's pid if the cluster's pid file names a live postgres process.
live_pid() {
	local pid
	[ -f "$PGDATA/postmaster.pid" ] || return 1
	pid=$(head -n 1 "$PGDATA/postmaster.pid" | tr -dc '0-9')
	alive "$pid" postgres || return 1
	echo "$pid"
}

# init creates the cluster in $PGDATA unless it exists.
init() {
	if [ -f "$PGDATA/PG_VERSION" ]; then
		return 0
	fi
	need_bin
	mkdir -p "$VARDIR"
	if [ "$(id -u)" -eq 0 ]; then
		id "$RUN_AS" >/dev/null 2>&1 || die "running as root, and there is no \"$RUN_AS\" user to run PostgreSQL as (Debian's postgresql package creates it)"
		reachable
		chown "$RUN_AS:" "$VARDIR"
	fi
	rm -rf "$PGDATA" # a half-made cluster from an interrupted init
	say "creating the cluster in $PGDATA ($("$BIN/postgres" --version 2>/dev/null || echo postgres))"
	# The bootstrap superuser is named lockerhub, so clients need no other role; trust
	# authentication as explained at the top.
	server "$BIN/initdb" -D "$PGDATA" -U "$SUPERUSER" --auth=trust -E UTF8 --locale=C.UTF-8 >>"$LOG" 2>&1 || {
		log_tail
		die "initdb failed"
	}
	# Connections over TCP from 127.0.0.1 only: no Unix socket (its default directory,
	# /var/run/postgresql, belongs to the system cluster) and no other address.
	server tee -a "$PGDATA/postgresql.conf" >/dev/null <<-EOF

		# scripts/postgres.sh: a development and test server on loopback.
		listen_addresses = '127.0.0.1'
		unix_socket_directories = ''
		# Several packages' tests run at once, each hub handle holding a small pool.
		max_connections = 300
		logging_collector = off
	EOF
	server tee "$PGDATA/pg_hba.conf" >/dev/null <<-EOF
		# scripts/postgres.sh: trust every connection from 127.0.0.1 (development and tests only).
		# TYPE  DATABASE  USER  ADDRESS       METHOD
		host    all       all   127.0.0.1/32  trust
	EOF
}

create_db() {
	local exists
	exists=$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$DB'") ||
		die "cannot query the server at 127.0.0.1:$PORT"
	if [ "$exists" != "1" ]; then
		psql_admin "CREATE DATABASE $DB" || die "CREATE DATABASE $DB failed"
	fi
	say "database \"$DB\" exists: $URL"
}

cmd_start() {
	need_bin
	local pid
	if ready; then
		if pid=$(live_pid); then
			say "already running (pid $pid) at 127.0.0.1:$PORT"
		else
			say "a PostgreSQL not started by this script (no live postmaster.pid in $PGDATA) already answers at 127.0.0.1:$PORT; using it"
		fi
		create_db
		return 0
	fi
	if pid=$(live_pid); then
		say "postgres (pid $pid) of this cluster is running but not answering at 127.0.0.1:$PORT; waiting"
	else
		init
		if [ -f "$PGDATA/postmaster.pid" ]; then
			# Left by a server that was killed: its pid is dead, a zombie or another process's
			# now, and postgres would refuse to start while kill -0 succeeds on it.
			say "removing the stale $PGDATA/postmaster.pid (pid $(head -n 1 "$PGDATA/postmaster.pid"), no live postgres)"
			rm -f "$PGDATA/postmaster.pid"
		fi
		if [ "$(id -u)" -eq 0 ]; then
			touch "$LOG"
			chown "$RUN_AS:" "$LOG"
		fi
		echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) scripts/postgres.sh start: 127.0.0.1:$PORT ===" >>"$LOG"
		# pg_ctl detaches the server (its own session) and, with -w, waits until the server
		# reports ready in postmaster.pid or exits; the port is an option so that
		# LOCKERHUB_POSTGRES_PORT can change it without touching the cluster.
		if ! server "$BIN/pg_ctl" -D "$PGDATA" -l "$LOG" -o "-p $PORT" -w -t "$START_TIMEOUT" start >/dev/null; then
			log_tail
			die "the server did not start at 127.0.0.1:$PORT within $START_TIMEOUT s (pg_ctl start failed)"
		fi
		pid=$(live_pid) || {
			log_tail
			die "pg_ctl reported a start but no postgres process runs for $PGDATA"
		}
		say "started postgres (pid $pid) at 127.0.0.1:$PORT, cluster $PGDATA, log $LOG"
	fi
	local deadline=$((SECONDS + START_TIMEOUT))
	until ready; do
		if ! live_pid >/dev/null; then
			log_tail
			die "postgres exited before accepting connections at 127.0.0.1:$PORT"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log_tail
			die "postgres did not accept connections at 127.0.0.1:$PORT within $START_TIMEOUT s; try scripts/postgres.sh stop, then start"
		fi
		sleep 0.25
	done
	create_db
}

cmd_stop() {
	local pid
	if ! pid=$(live_pid); then
		say "not running"
		if ready; then
			say "note: something not started by this script answers at 127.0.0.1:$PORT; left alone"
		fi
		return 0
	fi
	need_bin
	say "stopping postgres (pid $pid)"
	if ! server "$BIN/pg_ctl" -D "$PGDATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null 2>&1; then
		say "still running after $STOP_TIMEOUT s: immediate shutdown"
		server "$BIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 10 stop >/dev/null 2>&1 || kill -KILL "$pid" 2>/dev/null || true
	fi
	say "stopped"
}

cmd_status() {
	local pid
	if pid=$(live_pid); then
		if ready; then
			say "running (pid $pid) at 127.0.0.1:$PORT"
			return 0
		fi
		say "not running at 127.0.0.1:$PORT: postgres (pid $pid) of $PGDATA is alive but not accepting connections there"
		return 1
	fi
	if ready; then
		say "running at 127.0.0.1:$PORT (not started by this script: no live postmaster.pid in $PGDATA)"
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
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) echo "$URL" ;;
reset) cmd_reset ;;
*)
	echo "usage: $0 start|stop|status|url|reset" >&2
	exit 2
	;;
esac
