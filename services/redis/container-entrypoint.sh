#!/bin/sh
# Starts a Redis or Sentinel node in a container (compose and k8s), with the image's engine: valkey-server where
# the image has it (STORE_ENGINE=valkey), else redis-server; Sentinel is that server with --sentinel.
#   container-entrypoint.sh redis|sentinel GENERATED_CONFIG [yes|no]
# A Redis node starts through start-redis-node.sh (beside this script), with the last argument
# (REDIS_CATCH_UP_BEFORE_PROMOTION) as its catch-up setting.
# The generated config (compose/config, k8s/base/config) holds __REDIS_PASSWORD__ where the
# password goes; it is filled in from the mounted secret into /data/<kind>.conf once. Redis and
# Sentinel rewrite that copy as the topology changes, so a restarted node keeps what it learnt.
set -eu
kind=$1
template=$2
conf=${DATA_DIR:-/data}/$kind.conf
if [ ! -f "$conf" ]; then
    REDIS_PASSWORD=$(cat "${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}")
    export REDIS_PASSWORD
    # awk's index/substr, not sed or gsub: any character may appear in the password.
    awk '{ while ((i = index($0, "__REDIS_PASSWORD__")) > 0)
               $0 = substr($0, 1, i - 1) ENVIRON["REDIS_PASSWORD"] substr($0, i + 18)
           print }' "$template" > "$conf"
    chmod 600 "$conf"
fi
server=$(command -v valkey-server || echo redis-server)
cli=$(command -v redis-cli || command -v valkey-cli || echo redis-cli)
if [ "$kind" = sentinel ]; then
    exec "$server" "$conf" --sentinel
fi
exec sh "$(dirname "$0")/start-redis-node.sh" "$conf" "${3:-yes}" "$server" "$cli"
