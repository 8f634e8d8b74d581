"""The matrix's tables: their columns and the cells of each row (matrix.py builds the rows)."""

from __future__ import annotations

from sessionproof.analysis.failover import LOST_CLASSES
from sessionproof.analysis.markdown import ms_short, or_na
from sessionproof.history import ANOMALY_CLASSES

TIMES = "\N{MULTIPLICATION SIGN}"  # spelled out: ruff flags the literal sign as a look-alike of x
# The anomaly classes of the matrix's 'other anomalies' column: all but the lost and stale, which have their own.
OTHER_ANOMALIES = tuple(name for name in ANOMALY_CLASSES if name not in (*LOST_CLASSES, "stale_reads"))
AVAILABILITY_COLUMNS = (
    "fault", "configuration", "client errors", "error window s", "longest gap s", "p99 before ms",
    "p99 during ms", "max during ms", "time to recover s", "valid", "SLOs", "report",
)  # fmt: skip
CORRECTNESS_COLUMNS = (
    "fault", "configuration", "acknowledged writes", "lost acknowledged writes", "indeterminate (took effect)",
    "stale reads in fault (run)", "other anomalies", "two masters s", "acknowledged/lost per master in fault",
)  # fmt: skip


LOAD_COLUMNS = (
    "scenario", "configuration", "requests", "failed", "GET /cart p50 µs", "GET /cart p99 µs", "POST p50 µs",
    "POST p99 µs", "lost updates", "valid", "SLOs", "report",
)  # fmt: skip


def load_cells(row: dict) -> list[str]:
    return [
        or_na(row["scenario"]),
        or_na(row["configuration"]),
        or_na(row["requests"]),
        or_na(row["failed"]),
        or_na(row["read_p50_us"]),
        or_na(row["read_p99_us"]),
        or_na(row["write_p50_us"]),
        or_na(row["write_p99_us"]),
        f"**{or_na(row['lost_updates'])}**",
        "yes" if row["valid"] else "**no**",
        "pass" if row["slo_passed"] else "FAIL",
        f"[report]({row['report']})",
    ]


def _client_errors_cell(row: dict) -> str:
    """The total, then each class seen and its count joined by TIMES, most frequent first."""
    seen = sorted(((name, count) for name, count in row["client_errors"].items() if count), key=lambda nc: -nc[1])
    by_class = ", ".join(f"{name}{TIMES}{count}" for name, count in seen)
    return or_na(row["client_errors_total"]) + (f" ({by_class})" if by_class else "")


def _recover_cell(row: dict) -> str:
    if row["time_to_recover_s"] is None and row["client_errors_total"] is not None:
        return "not recovered"  # failover figures exist, but no success followed the last error
    return or_na(row["time_to_recover_s"])


def _per_master_cell(row: dict) -> str:
    """'redis-1 (old): 120/118, redis-2: 40/0': writes each master acknowledged during the fault / lost of them."""
    writes = row["writes_during_fault"]
    if not writes:
        return "n/a"  # no partition block, or no response named its Redis node (X-Store-Node)
    return ", ".join(
        f"{name}{' (old)' if name == row['old_master'] else ''}: {w['acked']}/{w['lost']}" for name, w in writes.items()
    )


def _key_cells(row: dict) -> list[str]:
    return [or_na(row["fault"]), or_na(row["configuration"], "")]


def _report_cell(row: dict) -> str:
    return f"[report]({row['report']})" if row["report"] else ""


def availability_cells(row: dict) -> list[str]:
    if "note" in row:
        return [*_key_cells(row), row["note"], *[""] * (len(AVAILABILITY_COLUMNS) - 4), _report_cell(row)]
    return [
        *_key_cells(row),
        _client_errors_cell(row),
        or_na(row["error_window_s"]),
        or_na(row["longest_gap_s"]),
        ms_short(row["p99_before_us"]),
        ms_short(row["p99_during_us"]),
        ms_short(row["max_during_us"]),
        _recover_cell(row),
        "yes" if row["valid"] else "**no**",
        "pass" if row["slo_passed"] else "FAIL",
        _report_cell(row),
    ]


def correctness_cells(row: dict) -> list[str]:
    if "note" in row:
        return [*_key_cells(row), row["note"], *[""] * (len(CORRECTNESS_COLUMNS) - 3)]
    return [
        *_key_cells(row),
        or_na(row["acknowledged_writes"]),
        _lost_cell(row),
        f"{or_na(row['indeterminate_writes'])} ({or_na(row['indeterminate_took_effect'])})",
        f"{or_na(row['stale_reads_in_fault'])} ({or_na(row['stale_reads'])})",
        _other_anomalies_cell(row),
        or_na(row["two_masters_s"]),
        _per_master_cell(row),
    ]


def _lost_cell(row: dict) -> str:
    """Lost acknowledged writes, in bold; the lost updates among them (concurrent adds) said apart."""
    total, concurrent = row["lost_acknowledged_writes"], row.get("lost_updates_of_writes")
    if not concurrent or total is None:
        return f"**{or_na(total)}**"
    return f"**{total - concurrent}** + {concurrent} concurrent"


def _other_anomalies_cell(row: dict) -> str:
    found = row.get("other_anomalies")
    if found is None:
        return "n/a (no history)"
    return ", ".join(f"{name.replace('_', ' ')} **{count}**" for name, count in found.items()) or "0"


def headline_cells(row: dict) -> str:
    if "note" in row:
        return f"| {' | '.join(_key_cells(row))} | {row['note']} | | | {_report_cell(row)} |"
    cells = [
        *_key_cells(row),
        or_na(row["client_errors_total"]),
        _lost_cell(row),
        ms_short(row["p99_during_us"]),
        _report_cell(row),
    ]
    return "| " + " | ".join(cells) + " |"


def table(columns: tuple[str, ...], cells: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(row) + " |" for row in cells),
        "",
    ]
