"""The documents against the repository: a short README, links that resolve, make targets that exist.

Pure: reads README.md, docs/*.md and the Makefile; starts no process.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sessionproof import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS_DIR = REPO_ROOT / "docs"
MAKEFILE = REPO_ROOT / "Makefile"
README_MAX_LINES = 300

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
MAKE_CALL = re.compile(r"(?<![\w./-])make(?![\w.-])([^\n#`]*)")
TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# The same pattern as the help target's grep in the Makefile: these are the targets `make help` lists.
HELP_TARGET = re.compile(r"^([a-z-]+):.*## ", re.MULTILINE)
PHONY = re.compile(r"^\.PHONY:(.*)$", re.MULTILINE)


def documents() -> list[Path]:
    return [README, *sorted(DOCS_DIR.glob("*.md"))]


def code_spans(markdown: str) -> list[str]:
    """The text of every fenced code block and every inline code span."""
    blocks = [match.group(0) for match in FENCE.finditer(markdown)]
    prose = FENCE.sub("", markdown)
    return blocks + [match.group(2) for match in INLINE_CODE.finditer(prose)]


def prose_of(markdown: str) -> str:
    """The text outside code: a link inside a code block or span is no link."""
    return INLINE_CODE.sub("code", FENCE.sub("", markdown))


def make_targets_named(markdown: str) -> set[str]:
    """Targets of every `make ...` in code: the first word after make that is no VAR=value or -option."""
    named = set()
    for code in code_spans(markdown):
        for call in MAKE_CALL.finditer(code):
            for word in call.group(1).split():
                if "=" in word or word.startswith("-"):
                    continue
                word = word.rstrip(",;:.)")
                if TARGET_NAME.fullmatch(word):
                    named.add(word)
                break
    return named


def relative_links(markdown: str) -> list[str]:
    """Every link and image target that is a path in the repository (no URL, no bare #anchor)."""
    targets = [match.group(1) for match in LINK.finditer(prose_of(markdown))]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.IGNORECASE) and not t.startswith("#")]


def broken_links(document: Path, markdown: str) -> list[str]:
    broken = []
    for target in relative_links(markdown):
        path = (document.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(REPO_ROOT):
            broken.append(f"{target} (outside the repository)")
        elif not path.exists():
            broken.append(target)
    return broken


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors: lower case, punctuation dropped, spaces to hyphens, -1, -2 ... for repeats."""
    anchors: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, repeat = slug, 0
        while anchor in anchors:
            repeat += 1
            anchor = f"{slug}-{repeat}"
        anchors.add(anchor)
    return anchors


def makefile_targets() -> tuple[set[str], set[str]]:
    """(targets `make help` lists, every target a document may name: those and the .PHONY ones)."""
    makefile = MAKEFILE.read_text()
    in_help = set(HELP_TARGET.findall(makefile))
    phony = {name for line in PHONY.findall(makefile) for name in line.split()}
    return in_help, in_help | phony


def relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def test_the_readme_is_read_in_five_minutes():
    lines = len(README.read_text().splitlines())
    assert lines < README_MAX_LINES, (
        f"README.md has {lines} lines, at most {README_MAX_LINES - 1} allowed: move reference material "
        "(settings, faults, measured tables) into a docs/*.md file and link it from 'Where the rest is'"
    )


def test_the_readme_links_every_document_in_docs():
    linked = {(README.parent / t.split("#", 1)[0]).resolve() for t in relative_links(README.read_text())}
    unlinked = [relative(doc) for doc in sorted(DOCS_DIR.glob("*.md")) if doc.resolve() not in linked]
    assert not unlinked, f"README.md links no {unlinked}: add each to its 'Where the rest is' list"


@pytest.mark.parametrize("document", documents(), ids=relative)
def test_every_relative_link_resolves_to_a_file_in_the_repository(document):
    broken = broken_links(document, document.read_text())
    assert not broken, (
        f"{relative(document)} links to paths that do not exist from {relative(document.parent) or '.'}/: "
        f"{broken}. Fix the path (docs/ is one level down: ../results/..., ../scripts/...) or drop the link"
    )


@pytest.mark.parametrize("document", documents(), ids=relative)
def test_every_anchor_names_a_heading_of_its_document(document):
    missing = []
    for target in relative_links(document.read_text()) + re.findall(r"\]\((#[^)\s]+)\)", document.read_text()):
        path, _, anchor = target.partition("#")
        if not anchor:
            continue
        linked = (document.parent / path).resolve() if path else document
        if linked.suffix == ".md" and linked.exists() and anchor not in heading_anchors(linked.read_text()):
            missing.append(target)
    assert not missing, (
        f"{relative(document)} links to anchors that no heading makes: {missing}. "
        "Use the heading's text in lower case, punctuation dropped, spaces as hyphens"
    )


@pytest.mark.parametrize("document", documents(), ids=relative)
def test_every_make_target_named_in_code_exists(document):
    _, known = makefile_targets()
    unknown = sorted(make_targets_named(document.read_text()) - known)
    assert not unknown, (
        f"{relative(document)} names make targets the Makefile does not have: {unknown}. "
        f"Fix the command (targets: {sorted(known)}) or add the target to the Makefile with a ## help line"
    )


def test_every_target_of_make_help_is_documented():
    in_help, _ = makefile_targets()
    assert {"up", "demo", "test"} <= in_help, "found too few targets in the Makefile: the pattern is broken"
    documented = set().union(*(make_targets_named(doc.read_text()) for doc in documents()))
    undocumented = sorted(in_help - documented)
    assert not undocumented, (
        f"`make help` lists targets that neither README.md nor docs/ mentions as `make <target>`: "
        f"{undocumented}. Add each to docs/make-targets.md"
    )


# The checks above are only as good as their parsing: each must catch what it is for.


def test_a_make_target_is_read_from_code_blocks_and_inline_code_only():
    markdown = (
        "Run `make up STACK=compose`, then make prose.\n\n```sh\nAPPS=4 make -s demo  # make images first\n"
        "LAYERS=x make experiments\n```\n\nand `make` alone, or `/usr/bin/time make bench`; see `docs/make-targets.md`.\n"
    )
    assert make_targets_named(markdown) == {"up", "demo", "images", "experiments", "bench"}


def test_a_missing_file_a_path_outside_the_repository_and_a_link_in_code_are_told_apart():
    markdown = (
        "[ok](../README.md) ![pic](../results/none.png) [up](../../../outside.md) "
        "[web](https://example.org/x) [here](#a) `[code](nowhere.md)`\n"
    )
    assert broken_links(DOCS_DIR / "example.md", markdown) == [
        "../results/none.png",
        "../../../outside.md (outside the repository)",
    ]


def test_anchors_follow_github():
    markdown = "# Compose on a machine (`make images`)\n## Exit codes\n## Exit codes\n```\n# not a heading\n```\n"
    assert heading_anchors(markdown) == {"compose-on-a-machine-make-images", "exit-codes", "exit-codes-1"}


SETTING_IN_CODE = re.compile(
    r"\b(FAULT|SCENARIO|STACK|LAYERS|ONLY)=(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_.<>| -]+?)(?=[\s`;)]|$)"
)


def named_values(markdown: str) -> list[tuple[str, str]]:
    """(setting, value) for every FAULT=, SCENARIO=, STACK=, LAYERS= and ONLY= in code, placeholders left out."""
    found = []
    for code in code_spans(markdown):
        for name, value in SETTING_IN_CODE.findall(code):
            for word in value.strip("\"'").split():
                if not any(c in word for c in "<>|.") and not word.isupper():  # NAME, <fault>: placeholders
                    found.append((name, word))
    return found


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.name)
def test_every_fault_scenario_stack_and_layer_named_in_code_exists(document):
    from sessionproof.chaos.faults import FAULTS
    from sessionproof.settings import CONFIGURATIONS

    scenarios = {p.stem for p in (REPO_ROOT / "loadtests" / "scenarios").glob("*.yaml")}
    known = {
        "FAULT": set(FAULTS),
        "SCENARIO": scenarios,
        "ONLY": scenarios,
        "STACK": {"local", "compose", "k8s"},
        "LAYERS": set(CONFIGURATIONS),
    }
    unknown = [f"{name}={value}" for name, value in named_values(document.read_text()) if value not in known[name]]
    assert not unknown, f"{document.name} names what does not exist (a typo, or a renamed fault or scenario): {unknown}"


def test_named_values_are_read_from_code_and_a_wrong_one_is_caught():
    text = 'run `make chaos FAULT=kill-redis-mastr` and\n```sh\nSTACK=compose LAYERS="hardened stock" make up\n```\n'
    assert sorted(named_values(text)) == [("FAULT", "kill-redis-mastr"), ("LAYERS", "hardened"), ("LAYERS", "stock"),
                                          ("STACK", "compose")]  # fmt: skip
    assert named_values("`make loadtest SCENARIO=NAME`") == []
    assert named_values("FAULT=kill-app outside code") == []
