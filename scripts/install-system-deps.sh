#!/usr/bin/env bash
# Install the system programs the local runtime runs: redis-server, redis-sentinel, nginx, Prometheus
# and its Redis and nginx exporters, and iproute2 and iptables for NETWORK=netns.
# Debian/Ubuntu: apt-get (with sudo when not root). Elsewhere: says what to install.
# --packages: print every package this script may install, one a line (scripts/purge-installed.sh
# removes them to prove the install path from nothing: docs/fresh-machine.md).
set -euo pipefail

if [ "${1:-}" = --packages ]; then
  # Keep in step with the checks below (tests/unit/test_install_path.py compares them).
  printf '%s\n' redis-server redis-sentinel redis-tools nginx python3-venv prometheus prometheus-redis-exporter \
    prometheus-nginx-exporter wrk hey strace podman netavark aardvark-dns runc debootstrap iproute2 iptables kubectl
  exit 0
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
# redis-cli: services/redis/start-redis-node.sh asks a restarted node whether it has caught up
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# OBSERVABILITY=on (the default): Prometheus, and the exporters of Redis and nginx
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-redis-exporter >/dev/null 2>&1 || missing+=(prometheus-redis-exporter)
command -v prometheus-nginx-exporter >/dev/null 2>&1 || missing+=(prometheus-nginx-exporter)
# make bench: independent load generators in C (wrk, closed loop) and Go (hey, fixed rate)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v hey >/dev/null 2>&1 || missing+=(hey)
# make power-loss: which bytes of each node's AOF its last fsync covered (the stand-in for the page cache)
command -v strace >/dev/null 2>&1 || missing+=(strace)
# STACK=compose: Podman with runc (Debian's default runtime, crun, fails on hybrid cgroups), and
# debootstrap for `make images`, which makes the Debian base without an image registry.
command -v podman >/dev/null 2>&1 || missing+=(podman)
# netavark and aardvark-dns: the network backend the compose file's fixed addresses need. Without them
# Podman 4.3 falls back to CNI, whose IPAM refuses them ("failed to allocate all requested IPs").
[ -x /usr/lib/podman/netavark ] || command -v netavark >/dev/null 2>&1 || missing+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || command -v aardvark-dns >/dev/null 2>&1 || missing+=(aardvark-dns)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
# NETWORK=netns (network faults, root only): namespaces and veths (iproute2), link cuts (iptables), rate
# limits (tc). Without root the stack runs on loopback and needs neither.
if [ "$(id -u)" -eq 0 ]; then
  command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
  command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing+=(iptables)
fi

# kubectl renders the k8s overlays for `make validate`; optional: not every apt source has it.
want_kubectl=""
command -v kubectl >/dev/null 2>&1 || want_kubectl=kubectl

# Podman's defaults that fail where a container may not raise its limits (no CAP_SYS_RESOURCE) or
# where crun meets hybrid cgroups, and the network backend: a drop-in of ours sets runc, limits no
# higher than this shell's, and netavark.
podman_dropin=/etc/containers/containers.conf.d/50-sessionproof.conf
compose_project=sessionproof

# A machine whose Podman already ran on CNI keeps CNI (Podman records its first choice), and switching
# leaves the containers made under CNI without a network. Switch only when every container is this
# project's (removed here: `make up STACK=compose` makes them again); refuse, with the fix, otherwise.
switch_podman_off_cni() {
  local backend all ours foreign pods
  backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null) || backend=unknown
  [ "$backend" = netavark ] && return 0
  all=$(podman ps --all --format '{{.Names}}' | sort)
  ours=$(podman ps --all --filter "label=com.docker.compose.project=$compose_project" --format '{{.Names}}' | sort)
  foreign=$(comm -23 <(printf '%s\n' "$all" | sed '/^$/d') <(printf '%s\n' "$ours" | sed '/^$/d'))
  pods=$(podman pod ps --quiet 2>/dev/null || true)
  if [ -n "$foreign" ] || [ -n "$pods" ]; then
    echo "make deps: not switching Podman to netavark. It uses the $backend network backend, and STACK=compose needs netavark (CNI refuses" >&2
    echo "the compose file's fixed addresses). Switching would leave these containers, which sessionproof did" >&2
    echo "not make, without a network: $(printf '%s ' $foreign $pods)" >&2
    echo "Fix: remove them (podman rm --force NAME; podman pod rm --force POD) and run make deps again, or" >&2
    echo "switch yourself and re-create them: [network] network_backend = \"netavark\" in $podman_dropin." >&2
    echo "Podman stays on $backend until then; the local stack (make up, make demo) does not need Podman." >&2
    return 1
  fi
  if [ -n "$ours" ]; then
    echo "switching Podman from $backend to netavark: removing this project's containers: $(printf '%s ' $ours)"
    podman rm --force $ours >/dev/null
  fi
  # The project's CNI network (compose names it <project>_default); netavark keeps its own networks.
  podman network rm --force "${compose_project}_default" >/dev/null 2>&1 || true
  remove_cni_bridges
  echo "switched Podman's network backend from $backend to netavark (images are kept)"
}

# CNI's bridges outlive the switch: cni-podman0 keeps 10.88.0.0/16, the subnet of netavark's default network,
# so replies to `podman build` and `podman run` containers went to that dead bridge (no DNS in `make images`).
# With no container left on them they are removed; one still in use is named.
remove_cni_bridges() {
  local bridge
  for bridge in /sys/class/net/cni-podman*; do
    [ -d "$bridge/bridge" ] || continue
    if [ -z "$(ls -A "$bridge/brif" 2>/dev/null)" ]; then
      ip link delete "$(basename "$bridge")" && echo "removed CNI's bridge $(basename "$bridge") (unused; netavark makes its own)"
    else
      echo "warning: CNI's bridge $(basename "$bridge") still has interfaces; its routes may shadow netavark's networks" >&2
    fi
  done
}

configure_podman() {
  [ "$(id -u)" -eq 0 ] && command -v podman >/dev/null 2>&1 || return 0
  local nofile nproc want network
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nproc" = unlimited ] && nproc=1048576
  [ "$nproc" -gt 4096 ] && nproc=4096
  network='[network]\nnetwork_backend = "netavark"\n'
  want=$(printf '# Written by sessionproof (make deps): runc, ulimits no higher than the host allows, the network backend.\n[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "runc"\n%s' \
    "$nofile" "$nofile" "$nproc" "$nproc" "$network")
  if [ -f "$podman_dropin" ] && [ "$(cat "$podman_dropin")" = "$(printf '%b' "$want")" ]; then
    remove_cni_bridges
    return 0
  fi
  if ! switch_podman_off_cni; then
    # Refused: runc and the ulimits still go in; the local stack needs no Podman, and `make up STACK=compose`
    # stops at once with the fix. The next `make deps` tries again.
    want=${want%"$network"}
    network=""
  fi
  mkdir -p "$(dirname "$podman_dropin")"
  printf '%b' "$want" > "$podman_dropin"
  echo "wrote $podman_dropin (runc; nofile $nofile, nproc $nproc${network:+; netavark})"
  [ -n "$network" ] || return 0
  local backend
  backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>&1) || backend="podman info failed: $backend"
  if [ "$backend" != netavark ]; then
    echo "error: Podman's network backend is '$backend' after make deps wrote $podman_dropin; STACK=compose" >&2
    echo "needs netavark. Look for a later network_backend setting: podman info --debug, or" >&2
    echo "grep -r network_backend /etc/containers /usr/share/containers ~/.config/containers" >&2
    exit 1
  fi
}

if [ ${#missing[@]} -eq 0 ] && [ -z "$want_kubectl" ]; then
  configure_podman
  exit 0
fi
if [ ${#missing[@]} -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "note: kubectl is not installed; \`make validate\` (part of \`make test\`) needs it to render k8s/" >&2
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
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "installed: ${missing[*]}"
  # Debian starts a system-wide service per package where systemd runs; the stack runs its own (on
  # PROMETHEUS_PORT, REDIS_EXPORTER_PORT, NGINX_EXPORTER_PORT), so stop the ones installed just now.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    for package in "${missing[@]}"; do
      case "$package" in
        prometheus|prometheus-redis-exporter|prometheus-nginx-exporter)
          $sudo systemctl disable --now "$package" >/dev/null 2>&1 &&
            echo "note: stopped and disabled the system service $package (the stack runs its own)" ;;
      esac
    done
  fi
fi
if [ -n "$want_kubectl" ]; then
  if $sudo apt-get install -y -qq --no-install-recommends kubectl >/dev/null 2>&1; then
    echo "installed: kubectl"
  else
    echo "note: no kubectl package in this machine's apt sources; \`make validate\` needs kubectl to render k8s/" >&2
  fi
fi
configure_podman
