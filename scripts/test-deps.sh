#!/usr/bin/env bash
# Installs what the test suite needs beyond Go: Debian's mosquitto clients, an independent MQTT
# implementation the broker tests use to check authentication and ACLs, and Chromium, the
# headless browser of the dashboard tests. Idempotent.
set -euo pipefail

missing=()
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-liberation) # text needs a font to lay out
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
