#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, from Debian's packages, on a fresh machine with
# only Go and gcc (as CI is): the mosquitto clients, an independent MQTT implementation the
# broker tests use to check authentication and ACLs; the mosquitto broker, which the tests of
# hubs consuming an external broker run against; PostgreSQL, the store of a cluster of hubs
# (scripts/postgres.sh runs it from the checkout; the package's binaries are in
# /usr/lib/postgresql/<version>/bin, not on PATH); and Chromium, the headless browser of the
# dashboard tests. Idempotent.
set -euo pipefail

missing=()
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-liberation) # text needs a font to lay out
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
