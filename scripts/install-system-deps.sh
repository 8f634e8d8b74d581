#!/usr/bin/env bash
# Install the system programs the local runtime runs: redis-server, redis-sentinel, nginx, Prometheus
# and its Redis and nginx exporters, and iproute2 and iptables for NETWORK=netns.
# Debian/Ubuntu: apt-get (with sudo when not root). Elsewhere: says what to install.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# OBSERVABILITY=on (the default): Prometheus, and the exporters of Redis and nginx
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-redis-exporter >/dev/null 2>&1 || missing+=(prometheus-redis-exporter)
command -v prometheus-nginx-exporter >/dev/null 2>&1 || missing+=(prometheus-nginx-exporter)
# make bench: independent load generators in C (wrk, closed loop) and Go (hey, fixed rate)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v hey >/dev/null 2>&1 || missing+=(hey)
# STACK=compose: Podman with runc (Debian's default runtime, crun, fails on hybrid cgroups), and
# debootstrap for `make images`, which makes the Debian base without an image registry.
command -v podman >/dev/null 2>&1 || missing+=(podman)
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
# where crun meets hybrid cgroups: a drop-in of ours sets runc and limits no higher than this shell's.
podman_dropin=/etc/containers/containers.conf.d/50-sessionproof.conf
configure_podman() {
  [ "$(id -u)" -eq 0 ] && command -v podman >/dev/null 2>&1 || return 0
  local nofile nproc want
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nproc" = unlimited ] && nproc=1048576
  [ "$nproc" -gt 4096 ] && nproc=4096
  want=$(printf '# Written by sessionproof (make deps): runc, and ulimits no higher than the host allows.\n[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "runc"\n' \
    "$nofile" "$nofile" "$nproc" "$nproc")
  if [ ! -f "$podman_dropin" ] || [ "$(cat "$podman_dropin")" != "$(printf '%b' "$want")" ]; then
    mkdir -p "$(dirname "$podman_dropin")"
    printf '%b' "$want" > "$podman_dropin"
    echo "wrote $podman_dropin (runc; nofile $nofile, nproc $nproc)"
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
