"""The harness's imports point from the higher part to the lower, never back."""

from __future__ import annotations

import ast

from sessionproof import REPO_ROOT

PARTS = ("configs", "runtimes", "analysis", "load", "chaos")  # anything else is the base
# What each part may import besides itself (everything may import the base).
ALLOWED = {
    "base": set(),
    "configs": set(),
    "analysis": set(),
    "runtimes": {"configs"},
    "load": {"analysis", "runtimes", "configs"},
    "chaos": {"load", "analysis", "runtimes", "configs"},
}


def part_of(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PARTS else "base"


def test_imports_point_down():
    package = REPO_ROOT / "scripts"
    upward = []
    for path in (package / "sessionproof").rglob("*.py"):
        me = part_of(".".join(path.relative_to(package).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sessionproof")):
                continue
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "sessionproof" else [node.module]
            upward += [
                (str(path.relative_to(package)), name)
                for name in names
                if part_of(name) not in {me, "base"} | ALLOWED[me]
            ]
    assert not upward, upward


def test_the_check_sees_an_upward_import():
    assert part_of("sessionproof.chaos.faults") == "chaos" and "chaos" not in ALLOWED["analysis"]


MAX_MODULE_LINES = 400


def test_no_module_is_over_400_lines():
    """A module that long mixes jobs; split it along them (issue 11)."""
    folders = ("scripts", "services", "loadtests", "tests")
    long = {
        str(path.relative_to(REPO_ROOT)): lines
        for folder in folders
        for path in (REPO_ROOT / folder).rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long
