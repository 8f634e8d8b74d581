"""Generate the compose/ and k8s/ configs from services/ templates and the settings: one source for every runtime.

    python -m sessionproof.configs.generate            write every generated file   (make generate)
    python -m sessionproof.configs.generate --check    list the files that differ from what would be generated; exit 1 if any

The Redis, Sentinel and nginx configs come from the same functions the local
runtime uses (`sessionproof.configs.templates`), with container addresses. The app's
settings go into one env file per runtime. The compose file and the k8s
manifests that carry settings (ports, probes, names) are generated too, so a
setting cannot differ between runtimes unless someone edits a generated file,
and `--check` (part of `make validate`) catches that. The Redis password is
never written: configs carry a placeholder that the container entrypoint fills
from the mounted secret.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Mapping
from pathlib import Path

from sessionproof import REPO_ROOT
from sessionproof.configs import templates as configs
from sessionproof.configs.compose_files import compose_files
from sessionproof.configs.container_files import RUNTIME_SET_SETTINGS
from sessionproof.configs.k8s_files import k8s_files

__all__ = ["RUNTIME_SET_SETTINGS", "drift", "generated_files", "main", "write"]


def generated_files(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Repository-relative path -> content, from the settings' defaults (not the caller's environment)."""
    env = {} if env is None else env
    configs.check_timeouts(env)
    return {**compose_files(env), **k8s_files(env)}


def drift(root: Path = REPO_ROOT) -> list[str]:
    """A unified diff line block per generated file that differs from, or is missing in, root."""
    problems = []
    for relative, text in generated_files().items():
        path = root / relative
        current = path.read_text() if path.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), f"{relative} (in the tree)", f"{relative} (generated)", n=0
            )
            problems.append("\n".join(list(diff)[:12]))
    return problems


def write(root: Path = REPO_ROOT) -> list[str]:
    written = []
    for relative, text in generated_files().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(relative)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.configs.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report drift instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(
                f"error: {len(problems)} generated file(s) differ from services/ and the settings; "
                "edit the templates or settings and run `make generate`",
                file=sys.stderr,
            )
            return 1
        print(f"ok: {len(generated_files())} generated files match services/ and the settings")
        return 0
    written = write()
    print(f"wrote {len(written)} file(s)" + (": " + ", ".join(written) if written else " (all up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
