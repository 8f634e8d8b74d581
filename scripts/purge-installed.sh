#!/usr/bin/env bash
# Undo what `make deps`, `make venv` and `make images` put on this machine, so that `.ci/run` can be
# proven from nothing (docs/fresh-machine.md): the system packages make deps installs (and what apt
# pulled in for them), the Podman drop-in, Podman's storage, networks and images, the venv, the image
# build folder and pip's cache. Stacks are stopped first. Root only, and only with --yes.
#
#   scripts/purge-installed.sh --yes            everything above
#   scripts/purge-installed.sh --yes --cni      then install Podman alone (no netavark), so Podman starts
#                                               on CNI as on a machine set up before this project
#
# Kept: the packages the machine's image has and Python needs (python3-venv, iproute2) and kubectl
# (not in Debian bookworm's archive: what is purged must be installable again by make deps).
set -euo pipefail
cd "$(dirname "$0")/.."

yes="" cni=""
for arg in "$@"; do
  case "$arg" in
    --yes) yes=1 ;;
    --cni) cni=1 ;;
    *) echo "usage: $0 --yes [--cni]" >&2; exit 2 ;;
  esac
done
if [ -z "$yes" ]; then
  echo "usage: $0 --yes [--cni]: removes the system packages make deps installs, Podman's storage and" >&2
  echo "images (every container and image on this machine), .venv, .build and pip's cache" >&2
  exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (it purges system packages)" >&2; exit 1; }

keep=(python3-venv iproute2 kubectl)
purge=()
for package in $(scripts/install-system-deps.sh --packages); do
  [[ " ${keep[*]} " == *" $package "* ]] && continue
  dpkg -s "$package" >/dev/null 2>&1 && purge+=("$package")
done

if command -v podman >/dev/null 2>&1; then
  foreign=$(podman ps --all --format '{{.Names}} {{index .Labels "com.docker.compose.project"}}' 2>/dev/null |
    awk '$2 != "sessionproof" {print $1}') || foreign="(podman ps failed)"
  if [ -n "$foreign" ]; then
    echo "error: Podman has containers this project did not make: $foreign; remove them first" >&2
    exit 1
  fi
fi

echo "== stopping stacks"
if [ -x .venv/bin/python ]; then
  make --no-print-directory down || true
  command -v podman >/dev/null 2>&1 && STACK=compose make --no-print-directory down || true
fi
if command -v podman >/dev/null 2>&1; then
  echo "== Podman: every container, image, network and its storage (podman system reset)"
  podman system reset --force >/dev/null 2>&1 || true
fi
for bridge in /sys/class/net/cni-podman* /sys/class/net/podman[0-9]*; do  # the engines' bridges outlive them
  [ -d "$bridge/bridge" ] && ip link delete "$(basename "$bridge")" && echo "  removed the bridge $(basename "$bridge")"
done

export DEBIAN_FRONTEND=noninteractive
if [ ${#purge[@]} -gt 0 ]; then
  echo "== apt-get purge ${purge[*]}"
  apt-get purge -y -qq "${purge[@]}" >/dev/null
fi
echo "== apt-get autoremove --purge (what apt pulled in for them)"
apt-get autoremove --purge -y -qq >/dev/null

echo "== configuration and state left behind"
rm -rf /etc/containers/containers.conf.d/50-sessionproof.conf /var/lib/containers /etc/containers/networks \
  /run/containers /run/netns/sessionproof* 2>/dev/null || true
rmdir /etc/containers/containers.conf.d /etc/containers 2>/dev/null || true
rm -rf .venv .build compose/.env compose/redis-password.txt "${HOME}/.cache/pip"

echo "== what is left (each must be missing)"
hash -r  # bash remembers where it found podman before the purge
left=0
for program in redis-server redis-sentinel nginx prometheus wrk hey podman runc debootstrap; do
  if command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ]; then
    echo "  still here: $program"; left=1
  fi
done
for path in /usr/lib/podman/netavark /usr/lib/podman/aardvark-dns /var/lib/containers .venv .build; do
  [ -e "$path" ] && { echo "  still here: $path"; left=1; }
done
[ "$left" -eq 0 ] || { echo "error: the purge left the above" >&2; exit 1; }
echo "  nothing of make deps, make venv or make images is left"

if [ -n "$cni" ]; then
  echo "== Podman alone, without netavark (as installed before this project needed it)"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends podman runc >/dev/null
  apt-get purge -y -qq netavark aardvark-dns >/dev/null 2>&1 || true
  echo "  podman info: network backend $(podman info --format '{{.Host.NetworkBackend}}')"
  # A machine that used Podman on CNI has CNI's bridge for the default network: start a container on it once
  # (an empty image whose command cannot run: the network is set up before the command fails).
  tar -cf - --files-from /dev/null | podman import --quiet - localhost/sessionproof-purge-empty >/dev/null
  podman run --rm localhost/sessionproof-purge-empty /none >/dev/null 2>&1 || true
  podman rmi --force localhost/sessionproof-purge-empty >/dev/null 2>&1 || true
  echo "  CNI's bridges: $(ls -d /sys/class/net/cni-podman* 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')"
fi
