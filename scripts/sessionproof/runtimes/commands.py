"""Running one command for the container runtimes (compose.py through the engine, k8s.py through kubectl).

The runtimes take the runner as a parameter, so their unit tests pass a recorded one instead.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

Runner = Callable[[list[str]], str]


class ContainerError(RuntimeError):
    """A docker or kubectl command failed; the message has the command and its error."""


def run_command(argv: list[str], timeout_s: float = 300) -> str:
    if shutil.which(argv[0]) is None:
        fix = "install it" if argv[0] == "kubectl" else "`make deps` installs Podman and podman-compose"
        raise ContainerError(
            f"{argv[0]} is not installed; STACK={'k8s' if argv[0] == 'kubectl' else 'compose'} needs it ({fix})"
        )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        needs = {
            "docker": "Docker with the compose v2 plugin and a running engine",
            "kubectl": "kubectl with a current context (kubectl config current-context) that can reach the cluster",
        }.get(argv[0], "Podman and podman-compose: `make deps`; images: `make images`")
        raise ContainerError(
            f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()[-800:]}\n(this needs {needs})"
        )
    return done.stdout
