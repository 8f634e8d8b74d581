"""Dependencies split by use: the app image installs the app's packages only, and each part declares what it imports."""

from __future__ import annotations

import ast
import re
import sys
import tomllib

from sessionproof import REPO_ROOT

# Import name -> distribution name, where they differ.
DISTRIBUTION = {
    "flask_session": "flask-session", "hdrh": "hdrhistogram", "yaml": "pyyaml", "prometheus_client": "prometheus-client",
    "compose_spec": "compose-spec", "kubernetes_validate": "kubernetes-validate",
}  # fmt: skip
NOT_IN_THE_APP = (
    "pytest",
    "ruff",
    "locust",
    "matplotlib",
    "kubernetes-validate",
    "compose-spec",
    "gevent",
    "supervisor",
)


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def declared(requirements: list[str]) -> set[str]:
    return {re.split(r"[=<>\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def third_party_imports(folder) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    ours = {"sessionproof", "sessionproof_app", "support", "unit", "integration"}
    return {DISTRIBUTION.get(n, n).lower() for n in names - ours - set(sys.stdlib_module_names)}


def test_the_app_declares_every_package_it_imports_and_nothing_of_the_harness():
    project = pyproject()["project"]
    app = declared(project["dependencies"])
    assert third_party_imports(REPO_ROOT / "services" / "app" / "sessionproof_app") <= app
    assert not app & set(NOT_IN_THE_APP)


def test_the_harness_declares_every_package_it_imports():
    groups = pyproject()["project"]["optional-dependencies"]
    everything = declared(pyproject()["project"]["dependencies"]) | declared(groups["harness"])
    harness = third_party_imports(REPO_ROOT / "scripts" / "sessionproof") | third_party_imports(REPO_ROOT / "loadtests")
    # compose-spec and kubernetes-validate are make validate's (dev); imported lazily by validate.py
    assert harness - everything <= declared(groups["dev"]), harness - everything


def test_the_app_image_installs_no_test_lint_plotting_or_load_package():
    lock = (REPO_ROOT / "scripts" / "requirements-app.lock").read_text().lower()
    pinned = {line.split("==")[0] for line in lock.splitlines() if "==" in line}
    assert "flask" in pinned and "redis" in pinned
    assert not pinned & set(NOT_IN_THE_APP), pinned & set(NOT_IN_THE_APP)
    dockerfile = (REPO_ROOT / "services" / "app" / "Dockerfile").read_text()
    app_stages = dockerfile.split("AS build-app", 1)[1].split("FROM ", 1)[0]
    assert "requirements-app.lock" in app_stages and "requirements.lock " not in app_stages
    final = dockerfile.rsplit("FROM ", 1)[1]
    assert final.startswith("python AS app") and "--from=build-app" in final, "the default target is the app"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile  # the official base unless `make images` picks one
