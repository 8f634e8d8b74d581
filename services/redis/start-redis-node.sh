#!/bin/sh
# Starts one Redis data node (local, compose and k8s alike) so that Sentinel cannot promote it before it
# has caught up with the master it rejoins.
#   start-redis-node.sh CONFIG [yes|no] [REDIS_SERVER] [REDIS_CLI]
# Why: a node that restarts from its own, older data reports master_link_down_since_seconds:-1 until its
# first sync (redis/redis#8785), so Sentinel takes it for a fresh replica and may promote it while the
# nodes with the newest data are down: every write acknowledged since it stopped is lost (383 of 1,291
# in one probe). With `yes` (REDIS_CATCH_UP_BEFORE_PROMOTION) the node starts with replica-priority 0,
# which Sentinel never promotes, and a watcher (a child of the server, so a kill or pause of the node
# reaches it too) raises the priority to 100 once the node is a replica whose link to its master is up
# and whose sync is done. A node that restarts as a master keeps 0 until it is made a replica and has
# synced. With `no` the node starts as Redis does on its own.
set -eu
conf=$1
catch_up=${2:-yes}
server=${3:-redis-server}
cli=${4:-redis-cli}
if [ "$catch_up" != yes ]; then
    exec "$server" "$conf"
fi
# A setting's first value; CONFIG REWRITE puts strings in double quotes.
setting() { awk -v name="$1" '$1 == name { value = $2; gsub(/^"|"$/, "", value); print value; exit }' "$conf"; }
host=$(setting bind)
port=$(setting port)
# redis-cli reads the password from REDISCLI_AUTH: never on a command line (ps would show it).
REDISCLI_AUTH=$(setting requirepass)
export REDISCLI_AUTH
caught_up() {
    "$cli" -h "$host" -p "$port" --no-auth-warning info replication 2>/dev/null | tr -d '\r' | awk -F: '
        $1 == "role" { role = $2 } $1 == "master_link_status" { link = $2 }
        $1 == "master_sync_in_progress" { syncing = $2 }
        END { exit !(role == "slave" && link == "up" && syncing == "0") }'
}
server_pid=$$  # the exec below makes this shell's pid the server's
(
    until caught_up; do
        kill -0 "$server_pid" 2>/dev/null || exit 0  # the server is gone: so is this node's start
        sleep 0.2
    done
    "$cli" -h "$host" -p "$port" --no-auth-warning config set replica-priority 100
) >/dev/null 2>&1 &  # holds none of the server's output open
exec "$server" "$conf" --replica-priority 0
