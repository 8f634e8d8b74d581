"""A campaign's history read once more, line by line, for what the verdict does not keep: every answer's time and
outcome (availability), the operations by kind, and the lines around each anomaly example.

The history can hold a million lines over hours; the checker already read it whole (rundata.load_run). This pass
keeps per answer only its time and outcome, and whole lines only of the sessions an example names, near its moment.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sessionproof.history import FINAL_READ_PROCESS, NEMESIS_PROCESS
from sessionproof.history.files import REQUIRED, history_path
from sessionproof.runfiles import iter_jsonl

CONTEXT_S = 3.0  # an example's operations within this many seconds either side of its moment
MAX_CONTEXT_LINES = 8  # the nearest to the moment; the observation that decided it is always added
OUTCOMES = ("ok", "fail", "info")


@dataclass
class Answers:
    """The load's answers (the final read's left out), in time order: Unix s and outcome; errors by index."""

    t: list[float] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)  # ok, fail (4xx) or info (5xx, timeout, connection)
    error: dict[int, str] = field(default_factory=dict)  # index -> the error field of a fail or info
    operations: dict[str, dict[str, int]] = field(default_factory=dict)  # f -> {ok, fail, info, unanswered}
    final_reads: dict[str, int] = field(default_factory=dict)


def example_moment_us(example: dict) -> float | None:
    """When an example was seen (µs since the run's start): as the checker times its moments."""
    for key in ("time_us", "acked_us", "known_us"):
        if isinstance(example.get(key), int | float):
            return example[key]
    return None


def read_answers_and_context(run_dir, started_unix_s: float, examples: list[dict]) -> tuple[Answers, list[list]]:
    """(the load's answers, for each example the history lines of its session near its moment, in time order)."""
    wanted: dict[str, list[tuple[int, float, float | None]]] = defaultdict(list)
    for index, example in enumerate(examples):
        moment = example_moment_us(example)
        if example.get("session") and moment is not None:
            wanted[example["session"]].append((index, moment, example.get("latest_us")))
    context: list[list[tuple[dict, bool]]] = [[] for _ in examples]  # (line, part of the deciding observation)
    following: dict[int, str] = {}  # example -> the process whose completion of the deciding observation is next
    rows: list[tuple[float, str, str | None]] = []
    operations: dict[str, Counter] = defaultdict(Counter)
    final_reads: Counter = Counter()
    pending: dict[str, str] = {}  # process -> f of its invoke not yet completed
    window_us = CONTEXT_S * 1_000_000
    for _, line in iter_jsonl(history_path(run_dir), REQUIRED):
        for index, moment, latest in wanted.get(str(line.get("session"))[:12], ()):
            deciding = following.get(index) == line["process"]
            if deciding:
                del following[index]
            elif line["time_us"] == latest and line["type"] == "invoke":
                deciding, following[index] = True, line["process"]
            if deciding or abs(line["time_us"] - moment) <= window_us:
                context[index].append((line, deciding))
        process, type_ = line["process"], line["type"]
        if process == NEMESIS_PROCESS:
            continue  # the faults, also in the events
        if process == FINAL_READ_PROCESS:
            final_reads[type_] += type_ != "invoke"
            continue
        if type_ == "invoke":
            if process in pending:
                operations[pending[process]]["unanswered"] += 1
            pending[process] = line["f"]
            continue
        pending.pop(process, None)
        operations[line["f"]][type_] += 1
        rows.append((started_unix_s + line["time_us"] / 1_000_000, type_, line.get("error")))
    for f in pending.values():
        operations[f]["unanswered"] += 1
    rows.sort(key=lambda row: row[0])
    answers = Answers(
        t=[row[0] for row in rows],
        outcome=[row[1] for row in rows],
        error={i: str(row[2]) for i, row in enumerate(rows) if row[1] != "ok"},
        operations={f: {k: counts[k] for k in (*OUTCOMES, "unanswered")} for f, counts in sorted(operations.items())},
        final_reads={k: final_reads[k] for k in OUTCOMES},
    )
    return answers, [_nearest(lines, examples[i]) for i, lines in enumerate(context)]


def _nearest(lines: list[tuple[dict, bool]], example: dict) -> list[dict]:
    """The MAX_CONTEXT_LINES lines nearest the example's moment, and the observation that decided it (a lost
    write's latest read, often the final read), in time order."""
    moment = example_moment_us(example) or 0
    deciding = [line for line, decides in lines if decides]
    near = sorted((line for line, decides in lines if not decides), key=lambda line: abs(line["time_us"] - moment))
    return sorted(near[:MAX_CONTEXT_LINES] + deciding, key=lambda line: line["time_us"])


def context_line(line: dict, moment_us: float, item: str | None = None) -> dict:
    """One history line as the report shows it: seconds from the moment and what the line says."""
    shown = {"dt_s": round((line["time_us"] - moment_us) / 1_000_000, 3), "process": line["process"]}
    for key in ("type", "f", "item", "user", "error", "store"):
        if line.get(key) is not None:
            shown[key] = line[key]
    if isinstance(line.get("cart"), list):
        shown["cart_items"] = len(line["cart"])
        if item is not None:
            shown["has_item"] = item in line["cart"]
    return shown


# -------------------------------------------------------------- availability
def error_windows(answers: Answers) -> list[dict]:
    """Each maximal run of failed answers (fail or info) with no ok answer between: {start_t, end_t, failures}."""
    windows: list[dict] = []
    current: dict | None = None
    for t, outcome in zip(answers.t, answers.outcome, strict=True):
        if outcome == "ok":
            current = None
            continue
        if current is None:
            current = {"start_t": t, "end_t": t, "failures": 0}
            windows.append(current)
        current["end_t"] = t
        current["failures"] += 1
    return windows


def stalls(answers: Answers) -> list[tuple[float, float]]:
    """Every span between two ok answers back to back (the load's first and last answers bound the run)."""
    ok = [t for t, outcome in zip(answers.t, answers.outcome, strict=True) if outcome == "ok"]
    points = ([answers.t[0]] if answers.t else []) + ok + ([answers.t[-1]] if answers.t else [])
    return [(a, b) for a, b in itertools.pairwise(points) if b > a]


def window_figures(answers: Answers, merged: list[tuple[float, float]]) -> dict:
    """The answers completed inside a union of intervals: how many, ok, fail, info, and the errors by kind."""
    counts = Counter()
    errors = Counter()
    for start, end in merged:
        lo, hi = bisect.bisect_left(answers.t, start), bisect.bisect_right(answers.t, end)
        counts.update(answers.outcome[lo:hi])
        errors.update(answers.error[i] for i in range(lo, hi) if i in answers.error)
    return {
        "answers": sum(counts.values()),
        **{outcome: counts[outcome] for outcome in OUTCOMES},
        "errors": dict(sorted(errors.items())),
    }


def per_bin(answers: Answers, origin_t: float, bin_s: float, bins: int) -> tuple[list[float], list[float]]:
    """(ok answers/s, failed answers/s) averaged over each bin of bin_s seconds from origin_t."""
    ok, failed = [0.0] * bins, [0.0] * bins
    for t, outcome in zip(answers.t, answers.outcome, strict=True):
        index = min(max(int((t - origin_t) // bin_s), 0), bins - 1)
        (ok if outcome == "ok" else failed)[index] += 1 / bin_s
    return ok, failed
