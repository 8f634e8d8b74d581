"""`make images`: every image of the compose stack, built here without an image registry.

1. The base: a Debian bookworm root made with `debootstrap --variant=minbase` from Debian's
   packages, imported as IMAGE_BASE (localhost/sessionproof-base:bookworm). Kept once made.
2. A wheelhouse on the host (.build/wheels): `pip wheel` of scripts/requirements.lock, which holds
   the app's packages too. pip inside a build cannot verify this network's certificates, so
   the builds install from it alone (`--no-index`), mounted at /wheels.
3. The images, from the same Dockerfiles that build on the official bases where a registry exists
   (a build argument picks the base): Redis and Sentinel, nginx, the app and the load generator,
   Prometheus and its two exporters.
4. compose/.env names the offline images (REDIS_IMAGE, NGINX_IMAGE, PROMETHEUS_IMAGE, ...), which
   the compose file reads in place of the official ones.

Each step that is done already is skipped (the base image exists, the wheelhouse matches the lock),
and Podman's layer cache makes a rebuild of unchanged images quick. IMAGE_BASE=debian:bookworm-slim
builds on a registry's Debian instead of step 1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sessionproof import REPO_ROOT, settings
from sessionproof.configs.container_files import IMAGES_ENV_FILE

BUILD_DIR = REPO_ROOT / ".build"
WHEELS_DIR = BUILD_DIR / "wheels"
LOCK = REPO_ROOT / "scripts" / "requirements.lock"
MADE_BASE_PREFIX = "localhost/sessionproof-base:"
REDIS_IMAGE = "localhost/sessionproof-redis:7.0"
VALKEY_IMAGE = "localhost/sessionproof-valkey:9.1"
VALKEY_DOCKERFILE = "services/valkey/Dockerfile"
NGINX_IMAGE = "localhost/sessionproof-nginx:1.22"
APP_IMAGE = "localhost/sessionproof:latest"
LOADGEN_IMAGE = "localhost/sessionproof-loadgen:latest"
# OBSERVABILITY=on: the same versions as the official images the compose file names (Debian's packages).
OBSERVABILITY_IMAGES = {
    "PROMETHEUS_IMAGE": ("localhost/sessionproof-prometheus:2.42", "prometheus"),
    "REDIS_EXPORTER_IMAGE": ("localhost/sessionproof-redis-exporter:1.45", "redis-exporter"),
    "NGINX_EXPORTER_IMAGE": ("localhost/sessionproof-nginx-exporter:0.11", "nginx-exporter"),
}


class ImageError(RuntimeError):
    """A step of the build failed; the message says which and how to fix it."""


def _run(argv: list[str], **kwargs) -> None:
    done = subprocess.run(argv, check=False, **kwargs)
    if done.returncode != 0:
        raise ImageError(f"`{' '.join(argv)}` failed ({done.returncode})")


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0


def make_base(name: str, progress=print) -> None:
    """debootstrap a minimal Debian bookworm and import it as an image (needs root, and Debian's mirror)."""
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed: `make deps` installs it (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise ImageError("debootstrap needs root to make the base image; or set IMAGE_BASE=debian:bookworm-slim")
    BUILD_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix="rootfs-") as scratch:
        root = Path(scratch) / "rootfs"
        progress(f"debootstrap --variant=minbase bookworm (Debian's packages; about 30 s) into {root}")
        _run(["debootstrap", "--variant=minbase", "bookworm", str(root)], stdout=subprocess.DEVNULL)
        progress(f"podman import -> {name}")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        _run(["podman", "import", "--quiet", "-", name], stdin=tar.stdout, stdout=subprocess.DEVNULL)
        tar.wait()


def fill_wheelhouse(progress=print) -> None:
    """Wheels for every pinned package (built on the host where only an sdist exists); kept while the lock is."""
    stamp = WHEELS_DIR / ".lock-sha256"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        progress(f"wheelhouse {WHEELS_DIR.relative_to(REPO_ROOT)} matches {LOCK.name}: kept")
        return
    WHEELS_DIR.mkdir(parents=True, exist_ok=True)
    progress(f"pip wheel -r {LOCK.relative_to(REPO_ROOT)} -> {WHEELS_DIR.relative_to(REPO_ROOT)}")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", "--quiet"]
    _run([*pip, "wheel", "--wheel-dir", str(WHEELS_DIR), "--find-links", str(WHEELS_DIR), "-r", str(LOCK)])
    # The lock's marker line for Python < 3.11.3 (Debian's 3.11.2) is skipped on a newer host: fetch it.
    for line in LOCK.read_text().splitlines():
        if ";" in line and not line.startswith("#"):
            requirement = line.split(";")[0].strip()
            _run([*pip, "download", "--no-deps", "--dest", str(WHEELS_DIR), requirement])
    stamp.write_text(digest)


def build(tag: str, dockerfile: str, base: str, target: str | None = None, progress=print) -> None:
    argv = ["podman", "build", "--quiet", "--format", "docker", "--file", dockerfile, "--tag", tag]
    argv += ["--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"PYTHON_IMAGE={base}"]
    argv += ["--build-arg", "PIP_INSTALL_OPTIONS=--no-index --find-links /wheels"]
    argv += ["--volume", f"{WHEELS_DIR}:/wheels:ro"]
    if dockerfile == VALKEY_DOCKERFILE:
        argv += ["--volume", f"{Path(_valkey_server()).parent}:/valkey:ro"]
    if target:
        argv += ["--target", target]
    started = time.monotonic()
    _run([*argv, str(REPO_ROOT)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    progress(f"built {tag} ({time.monotonic() - started:.0f} s)")


def _valkey_server() -> str:
    """The valkey-server binary the Valkey image gets: the pinned package's (built for manylinux 2.28, so it runs on
    the bookworm base), else one on the PATH."""
    from sessionproof import engines

    if engines.VALKEY_PACKAGE_BINARY.is_file():
        return str(engines.VALKEY_PACKAGE_BINARY)
    try:
        return engines.server_binary("valkey")
    except engines.EngineMissing as error:
        raise ImageError(str(error)) from None


def build_all(progress=print) -> float:
    """Every image; returns the seconds it took."""
    from sessionproof.runtimes.compose import container_engine

    if container_engine() == "docker":
        progress("CONTAINER_ENGINE=docker: `docker compose` pulls the official images and builds the app's")
        return 0.0
    if shutil.which("podman") is None:
        raise ImageError("podman is not installed: `make deps` installs Podman, runc and podman-compose")
    started = time.monotonic()
    base = settings.get_str("IMAGE_BASE")
    if base.startswith(MADE_BASE_PREFIX) and not image_exists(base):
        make_base(base, progress)
    elif base.startswith(MADE_BASE_PREFIX):
        progress(f"base {base}: kept (`podman rmi {base}` makes it again)")
    fill_wheelhouse(progress)
    build(REDIS_IMAGE, "services/redis/Dockerfile", base, progress=progress)
    build(VALKEY_IMAGE, VALKEY_DOCKERFILE, base, progress=progress)
    build(NGINX_IMAGE, "services/nginx/Dockerfile", base, progress=progress)
    build(APP_IMAGE, "services/app/Dockerfile", base, target="app", progress=progress)
    build(LOADGEN_IMAGE, "services/app/Dockerfile", base, target="loadgen", progress=progress)
    for tag, target in OBSERVABILITY_IMAGES.values():
        build(tag, "services/prometheus/Dockerfile", base, target=target, progress=progress)
    names = {"REDIS_IMAGE": REDIS_IMAGE, "VALKEY_IMAGE": VALKEY_IMAGE, "NGINX_IMAGE": NGINX_IMAGE} | {
        setting: tag for setting, (tag, _target) in OBSERVABILITY_IMAGES.items()
    }
    IMAGES_ENV_FILE.write_text(
        "# Written by `make images`: the images built here replace the official ones the compose file names.\n"
        "# Grafana (the observability profile's dashboard) is not packaged by Debian: it has no offline image.\n"
        + "".join(f"{setting}={tag}\n" for setting, tag in names.items())
    )
    elapsed = time.monotonic() - started
    progress(f"images ready in {elapsed:.0f} s; {IMAGES_ENV_FILE.relative_to(REPO_ROOT)} names them for compose")
    return elapsed


def main() -> int:
    try:
        build_all()
    except (ImageError, settings.ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
