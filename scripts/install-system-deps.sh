#!/usr/bin/env bash
# Install the system programs the local runtime runs: redis-server, redis-sentinel, nginx.
# Debian/Ubuntu: apt-get (with sudo when not root). Elsewhere: says what to install.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing ${missing[*]}, and this is not a Debian/Ubuntu machine (no apt-get)." >&2
  echo "Install them with your package manager (Redis 7 with redis-sentinel, nginx >= 1.18), then re-run." >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: need root or sudo to run: apt-get install ${missing[*]}" >&2; exit 1
  fi
fi

echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
