"""report.md and plots/power-loss.png of a `make power-loss` run, from its summary.json.

`python -m sessionproof.analysis.power_loss_report FOLDER`, run by `make power-loss` when its rounds are written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sessionproof.runs import folder_report_main, write_report_files


def _bytes_range(rounds: list[dict]) -> str:
    cuts = [node["cut_bytes"] for r in rounds for node in r["nodes"].values()]
    return _span(cuts) if cuts else "n/a"


def _engines(summary: dict) -> str:
    """The store of each configuration: what its nodes reported (`store`), else its STORE_ENGINE setting."""
    named = [f.get("store") or f["settings"].get("STORE_ENGINE", "redis") for f in summary["configurations"].values()]
    return ", ".join(dict.fromkeys(named)) or "none"


def _span(values: list[int]) -> str:
    return f"{min(values)} to {max(values)}"


def report_lines(summary: dict) -> list[str]:
    settings = summary["settings"]
    lines = [
        f"# Power loss of every data node, {summary['started_at']}",
        "",
        f"Engines: {_engines(summary)}. {settings['rounds']} power losses per configuration, each "
        f"{settings['write_min_s']:g}-{settings['write_max_s']:g} s into a write load of {settings['writers']} "
        f"writers (seed {settings['seed']}).",
        "",
        "The stand-in for the power loss: every data node gets SIGKILL at once, then each node's AOF is cut back to "
        "what its last completed fsync covered (traced with strace); the rest was in the page cache only. Every node "
        "starts from what is left, and every acknowledged item is read back. The Sentinels and apps keep running.",
        "",
        "![lost acknowledged writes per power loss](plots/power-loss.png)",
        "",
        "| configuration | power losses | acknowledged | lost | lost per power loss | lost writes acknowledged "
        "before the power loss, ms | AOF bytes cut per node | last fsync before the power loss, ms | valid |",
        "|---|--:|--:|--:|---|---|---|---|---|",
    ]
    for label, figures in summary["configurations"].items():
        rounds = figures["rounds"]
        ages = [age for r in rounds if r["lost_acked_before_ms"] for age in r["lost_acked_before_ms"]]
        last = [n["last_fsync_before_ms"] for r in rounds for n in r["nodes"].values() if n["last_fsync_before_ms"]]
        valid = all(r["valid"] for r in rounds)
        lines.append(
            f"| {label} | {len(rounds)} | {sum(r['acknowledged'] for r in rounds)} | "
            f"**{sum(r['lost'] for r in rounds)}** | {', '.join(str(r['lost']) for r in rounds)} | "
            f"{_span(ages) if ages else 'none lost'} | {_bytes_range(rounds)} | "
            f"{_span(last) if last else 'n/a'} | {'yes' if valid else '**no**'} |"
        )
    lines += [
        "",
        "Acknowledged before the power loss: when the client had the 200, against the moment the SIGKILLs were sent; "
        "below 0, the answer was on its way when the nodes died. Cut: the bytes each node's AOF lost, a write in "
        "flight (sent, not yet answered) included.",
    ]
    for label, why in (summary.get("skipped") or {}).items():
        lines.append(f"\nNot run: {label}: {why}.")
    problems = [
        f"- {label}, round {n + 1}, {node}: {problem}"
        for label, figures in summary["configurations"].items()
        for n, r in enumerate(figures["rounds"])
        for node, cut in r["nodes"].items()
        for problem in cut["problems"]
    ]
    if problems:
        lines += ["", "Rounds not valid (their AOF was left as it was):", *problems]
    lines += [
        "",
        "What it does not show: a real power loss can also tear a page or lose a directory entry the stand-in keeps; "
        "strace slows every traced node (POST latency under strace is in summary.json, not a benchmark: "
        "`make bench` measures what each setting costs).",
        "",
        f"Command: `{summary['command']}`",
        "",
    ]
    return lines


def plot_power_loss(summary: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    labels = list(summary["configurations"])
    figure = Figure(figsize=(max(6, 1.8 * len(labels)), 4), dpi=100)
    axes = figure.subplots(1, 1, gridspec_kw={"left": 0.1, "right": 0.98, "bottom": 0.3})
    for index, label in enumerate(labels):
        rounds = summary["configurations"][label]["rounds"]
        lost = [r["lost"] for r in rounds]
        axes.bar(index, sum(lost) / max(len(lost), 1), 0.6, color="C3" if sum(lost) else "C2", alpha=0.5)
        axes.plot([index] * len(lost), lost, "k.", ms=6)
        axes.annotate(f"{sum(lost)} of {sum(r['acknowledged'] for r in rounds)}", (index, max(lost, default=0)),
                      ha="center", va="bottom", fontsize=8)  # fmt: skip
    most = max((r["lost"] for f in summary["configurations"].values() for r in f["rounds"]), default=0)
    axes.set_ylim(0, max(most * 1.2, 1))  # room for the labels above the highest dot
    axes.set_xticks(range(len(labels)))
    engines = [summary["configurations"][label]["settings"].get("STORE_ENGINE", "redis") for label in labels]
    axes.set_xticklabels([label if " on " in label else f"{label} on {engine}" for label, engine in
                          zip(labels, engines, strict=True)], rotation=20, ha="right", fontsize=8)  # fmt: skip
    axes.set_ylabel("acknowledged writes lost per power loss")
    axes.set_title("power loss of every data node: mean (bar) and each power loss (dot)", fontsize=10)
    axes.grid(True, axis="y", lw=0.5, alpha=0.4)
    figure.savefig(path)


def write_report(summary: dict, out_dir: Path) -> None:
    write_report_files(out_dir, report_lines(summary), "power-loss.png", lambda path: plot_power_loss(summary, path))


def main(argv: list[str] | None = None) -> int:
    return folder_report_main(argv, "power-loss", write_report)


if __name__ == "__main__":
    sys.exit(main())
