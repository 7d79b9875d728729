# Helpers shared by the scripts that run development servers from this checkout
# (scripts/influxdb.sh, scripts/postgres.sh). Source it after setting NAME (the prefix of
# messages) and LOG (the server's log file).

say() { echo "$NAME: $*"; }

die() {
	echo "$NAME: $*" >&2
	exit 1
}

# log_tail prints the end of the server's log to stderr, for a server that failed.
log_tail() {
	if [ -f "$LOG" ]; then
		echo "---- last 40 lines of $LOG ----" >&2
		tail -n 40 "$LOG" >&2
		echo "----" >&2
	fi
}

# alive PID COMM succeeds if process PID runs and is COMM: not a stale pid file whose pid was
# reused by something else, and not a zombie (a server killed with SIGKILL stays one where
# nothing reaps orphans, as a container's first process often does not, and kill -0 still
# succeeds on it).
alive() {
	local pid=$1 comm=$2
	[ -n "$pid" ] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" != "$comm" ]; then
		return 1
	fi
	if [ -r "/proc/$pid/stat" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = "Z" ]; then
		return 1
	fi
}
