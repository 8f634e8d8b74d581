#!/usr/bin/env bash
# Inject a fault by hand while `locust` runs, then heal it: scripts/chaos.sh kill-redis-master [--hold-s 8]
# Same as `make chaos FAULT=...`; `scripts/chaos.sh --help` lists the faults.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "error: no $root/.venv; run \`make up\` first" >&2
  exit 2
fi
exec "$root/.venv/bin/python" -m sessionproof.chaos.faults "$@"
