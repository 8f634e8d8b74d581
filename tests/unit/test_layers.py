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
    # Not analysis: the producer of a run's data does not depend on its consumer; it runs the report as a program.
    "load": {"runtimes", "configs"},
    "chaos": {"load", "analysis", "runtimes", "configs"},
}


def part_of(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PARTS else "base"


def imported_names(source: str) -> list[str]:
    """Every sessionproof module or name the source imports, at the top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names if alias.name.startswith("sessionproof")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sessionproof"):
            names += [f"{node.module}.{a.name}" for a in node.names] if node.module == "sessionproof" else [node.module]
    return names


def upward_imports(module: str, source: str) -> list[str]:
    """What the source of `module` (dotted) imports from a part it may not import."""
    me = part_of(module)
    return [name for name in imported_names(source) if part_of(name) not in {me, "base"} | ALLOWED[me]]


def test_imports_point_down():
    package = REPO_ROOT / "scripts"
    upward = [
        (str(path.relative_to(package)), name)
        for path in (package / "sessionproof").rglob("*.py")
        for name in upward_imports(".".join(path.relative_to(package).with_suffix("").parts), path.read_text())
    ]
    assert not upward, upward


def test_the_locustfile_is_load_and_imports_nothing_of_the_analysis():
    """The Locust users write the history; they judge nothing, so they need no checker."""
    locustfile = REPO_ROOT / "loadtests" / "locustfile.py"
    assert upward_imports("sessionproof.load.locustfile", locustfile.read_text()) == []


def test_the_history_is_at_the_base():
    """history/ (the vocabulary, its files, the checker) imports no part: every part may use it."""
    assert part_of("sessionproof.history.checker") == "base"


def test_the_check_sees_an_upward_import():
    assert part_of("sessionproof.chaos.faults") == "chaos" and "chaos" not in ALLOWED["analysis"]


def test_the_check_sees_load_importing_analysis_in_every_form():
    soak = "sessionproof.load.soak"
    assert upward_imports(soak, "from sessionproof.analysis.failover import latency_between") == [
        "sessionproof.analysis.failover"
    ]
    assert upward_imports(soak, "from sessionproof import analysis, runs") == ["sessionproof.analysis"]
    assert upward_imports(soak, "import sessionproof.analysis.report") == ["sessionproof.analysis.report"]
    inside = "def main():\n    from sessionproof.analysis.soak_report import write_report\n"
    assert upward_imports(soak, inside) == ["sessionproof.analysis.soak_report"]
    allowed = (
        "from sessionproof.runtimes.factory import get_runtime\nfrom sessionproof.validity import BAD_INPUT_EXIT_CODE"
    )
    assert upward_imports(soak, allowed) == []


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


def runtimes_import_graph() -> dict[str, set[str]]:
    """Each module of runtimes/ and the modules of runtimes/ it imports, at the top or inside a function."""
    folder = REPO_ROOT / "scripts" / "sessionproof" / "runtimes"
    package = "sessionproof.runtimes"
    modules = {path.stem for path in folder.glob("*.py") if path.stem != "__init__"}

    def named(dotted: str) -> str | None:
        """The module of runtimes/ a dotted name is or lies in: `package` for the package's own __init__."""
        if dotted == package:
            return package
        if dotted.startswith(f"{package}."):
            module = dotted.split(".")[2]
            return module if module in modules else package
        return None

    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        me = package if path.stem == "__init__" else path.stem
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {named(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: counted from runtimes/ itself
                    base = ".".join([*package.split(".")[: 3 - node.level], *filter(None, [base])])
                if base == package:  # `from sessionproof.runtimes import probes`: the module probes
                    imported |= {named(f"{base}.{alias.name}") for alias in node.names}
                else:
                    imported.add(named(base))
        graph[me] = imported - {None, me}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as the modules along it, first module again at the end; [] when there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if cycle := visit(imported):
                return cycle
        path.pop()
        done.add(module)
        return []

    for module in sorted(graph):
        if cycle := visit(module):
            return cycle
    return []


def test_no_import_cycle_among_the_runtimes_modules():
    """Issue 24: the factory imports the runtimes, and nothing imports the factory back (imports in functions count)."""
    cycle = find_cycle(runtimes_import_graph())
    assert not cycle, "import cycle in scripts/sessionproof/runtimes/: " + " -> ".join(cycle)


def test_the_cycle_check_sees_a_cycle_through_an_import_inside_a_function():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
    graph = runtimes_import_graph()
    assert "compose" in graph["images"]  # imported inside build_all, not at the top
    assert {"probes", "container_network"} <= graph["compose"]  # `from sessionproof.runtimes import ...`


def test_the_anomaly_classes_are_listed_once():
    """The history's vocabulary (sessionproof/history) is the one list; no other module spells the classes out."""
    import re

    from sessionproof.history import ANOMALY_CLASSES

    spelled = re.compile(r",\s*".join(f'"{name}"' for name in ANOMALY_CLASSES[:2]))
    package = REPO_ROOT / "scripts" / "sessionproof"
    again = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.parent.name != "history" and spelled.search(path.read_text())
    ]
    assert not again, f"the anomaly classes are listed again in {again}: import them from sessionproof.history"
