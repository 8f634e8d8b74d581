"""What a load run measured, in a form that merges across Locust workers.

Latencies go into HdrHistograms (microseconds, 3 significant digits) per
second, endpoint and kind ("service" from the actual send, "intended" from the
intended start). Workers ship their buckets to the master with every stats
report (`drain()` -> `merge()`), so `--processes` and master/worker runs give
the same histograms as a single process.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict, deque
from pathlib import Path

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from sessionproof.histograms import HIGHEST_US, LOWEST_US, new_histogram, percentiles_us
from sessionproof.history.files import HISTORY_FILE, operation, write_history

MAX_TIMELINE_ENTRIES = 2_000_000  # per process between drains: bounds memory on very long runs
# A second's histograms are sealed (kept encoded, a few hundred bytes, instead of 136 KiB of counts each) once
# requests of that second can no longer complete: a 2-hour campaign held 3 MB/s of live histograms, 21 GB by its
# end. At most SEALS_PER_RECORD per request, so the encoding (0.1 ms each) never blocks the event loop for long.
SEAL_AFTER_S = 3
SEALS_PER_RECORD = 4


class Recorder:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # (second, endpoint, kind) -> the histogram, or its encoding once sealed (live_histogram gives it back)
        self.histograms: dict[tuple[int, str, str], HdrHistogram | str] = {}
        self._unsealed: deque[tuple[int, str, str]] = deque()  # live keys, oldest second first
        self.outcomes: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
        self.served_by: Counter[str] = Counter()
        self.failures_by_kind: Counter[str] = Counter()
        self.cpu_max_percent = 0.0
        self.cpu_samples = 0
        self.loop_lag = new_histogram()  # how late the generator's event loop woke a 1 ms sleeper, µs
        self.loop_lag_window = new_histogram()  # the same since the last heartbeat (take_loop_lag_window)
        self.events: list[dict] = []
        # [t, endpoint, ok, kind, store] per request, for error windows, gaps and which Redis node acknowledged
        # a write (store: the X-Store-Node header, None when absent).
        self.timeline: list[list] = []
        self.history: list[dict] = []  # every session operation: invoke, then ok / fail / info (history/)

    # ---------------------------------------------------------------- record
    def record(
        self,
        endpoint: str,
        service_us: int,
        intended_us: int,
        ok: bool,
        at_s: float | None = None,
        kind: str = "ok",
        store: str | None = None,
        server_us: dict[str, int] | None = None,
    ) -> None:
        """One request: its client-side times, and the app's own (server_us: {"app": µs, "store": µs}, from
        its Server-Timing header) when it sent them."""
        at_s = at_s if at_s is not None else time.time()
        if len(self.timeline) < MAX_TIMELINE_ENTRIES:
            self.timeline.append([round(at_s, 4), endpoint, ok, kind, store])
        second = int(at_s)
        for kind, value in (("service", service_us), ("intended", intended_us), *(server_us or {}).items()):
            self.live_histogram((second, endpoint, kind)).record_value(min(max(value, LOWEST_US), HIGHEST_US))
        self.outcomes[(second, endpoint)][0 if ok else 1] += 1
        self._seal_older_than(second - SEAL_AFTER_S)

    def live_histogram(self, key: tuple[int, str, str]) -> HdrHistogram:
        """The histogram of (second, endpoint, kind) to record into: new, live, or decoded again if sealed."""
        value = self.histograms.get(key)
        if isinstance(value, HdrHistogram):
            return value
        # A late sample for a sealed second (or a worker's, merged) decodes it again.
        histogram = self.histograms[key] = new_histogram() if value is None else _decoded(value)
        self._unsealed.append(key)
        return histogram

    def _seal_older_than(self, second: int, limit: int = SEALS_PER_RECORD) -> None:
        while limit and self._unsealed and self._unsealed[0][0] < second:
            key = self._unsealed.popleft()
            value = self.histograms.get(key)
            if isinstance(value, HdrHistogram):
                self.histograms[key] = _encoded(value)
                limit -= 1

    def histogram(self, key: tuple[int, str, str]) -> HdrHistogram:
        """A copy to read (sealed or not)."""
        value = self.histograms[key]
        return value if isinstance(value, HdrHistogram) else _decoded(value)

    def failure(self, kind: str) -> None:
        self.failures_by_kind[kind] += 1

    def served(self, instance: str | None) -> None:
        self.served_by[instance or "unknown"] += 1

    def event(self, type_: str, **fields) -> None:
        self.events.append({"t": time.time(), "type": type_, **fields})

    def lag(self, late_us: int) -> None:
        value = min(max(late_us, LOWEST_US), HIGHEST_US)
        self.loop_lag.record_value(value)
        self.loop_lag_window.record_value(value)

    def take_loop_lag_window(self) -> dict[str, int | None]:
        """The loop lag's percentiles since the last call (every process's, merged on a master), then afresh."""
        taken = percentiles_us(self.loop_lag_window)
        self.loop_lag_window = new_histogram()
        return taken

    def cpu(self, percent: float) -> None:
        self.cpu_max_percent = max(self.cpu_max_percent, percent)
        self.cpu_samples += 1

    # ----------------------------------------------------------------- merge
    def drain(self) -> dict:
        """Everything recorded since the last drain, JSON-serialisable; the recorder starts afresh."""
        data = {
            "histograms": [[t, e, k, _encoded(h)] for (t, e, k), h in self.histograms.items()],
            "outcomes": [[t, e, ok, failed] for (t, e), (ok, failed) in self.outcomes.items()],
            "served_by": dict(self.served_by),
            "failures_by_kind": dict(self.failures_by_kind),
            "cpu": [self.cpu_max_percent, self.cpu_samples],
            "loop_lag": self.loop_lag.encode().decode("ascii") if self.loop_lag.get_total_count() else None,
            "events": self.events,
            "timeline": self.timeline,
            "history": self.history,
        }
        self.reset()
        return data

    def merge(self, data: dict) -> None:
        for t, endpoint, kind, encoded in data.get("histograms", []):
            key = (t, endpoint, kind)
            if key in self.histograms:
                self.live_histogram(key).decode_and_add(encoded)
            else:
                self.histograms[key] = encoded  # sealed as it came: decoded only if more arrives for it
        self._seal_older_than(int(time.time()) - SEAL_AFTER_S, limit=len(self._unsealed))
        for t, endpoint, ok, failed in data.get("outcomes", []):
            self.outcomes[(t, endpoint)][0] += ok
            self.outcomes[(t, endpoint)][1] += failed
        self.served_by.update(data.get("served_by", {}))
        self.failures_by_kind.update(data.get("failures_by_kind", {}))
        cpu_max, samples = data.get("cpu", [0.0, 0])
        self.cpu_max_percent = max(self.cpu_max_percent, cpu_max)
        self.cpu_samples += samples
        if data.get("loop_lag"):
            self.loop_lag.decode_and_add(data["loop_lag"])
            self.loop_lag_window.decode_and_add(data["loop_lag"])
        self.events.extend(data.get("events", []))
        self.timeline.extend(data.get("timeline", []))
        self.history.extend(data.get("history", []))

    # ----------------------------------------------------------------- write
    def operation(self, type_: str, f: str, process: str, kind: str, **fields) -> None:
        """One history line (history/files.py says which fields); its time is kept in µs since the epoch until
        write_raw makes it run-relative. Never dropped: a history with a hole would hide what it lost."""
        self.history.append(operation(type_, f, process, kind, time.time_ns() // 1000, **fields))

    def write_raw(self, raw_dir: Path, run_start_s: float | None = None) -> None:
        """raw/histograms.jsonl, outcomes.jsonl, counters.json, timeline.jsonl, history.jsonl;
        events appended to events.jsonl. History times become µs since run_start_s (the first operation's
        time when it is not given)."""
        raw_dir.mkdir(parents=True, exist_ok=True)
        ops = self.history
        origin_us = (
            int(run_start_s * 1_000_000) if run_start_s is not None else min((o["time_us"] for o in ops), default=0)
        )
        write_history(raw_dir / HISTORY_FILE, ops, origin_us)
        with (raw_dir / "histograms.jsonl").open("w") as out:
            for (t, endpoint, kind), histogram in sorted(self.histograms.items()):
                line = {"t": t, "endpoint": endpoint, "kind": kind, "hist": _encoded(histogram)}
                out.write(json.dumps(line) + "\n")
        with (raw_dir / "outcomes.jsonl").open("w") as out:
            for (t, endpoint), (ok, failed) in sorted(self.outcomes.items()):
                out.write(json.dumps({"t": t, "endpoint": endpoint, "ok": ok, "failed": failed}) + "\n")
        counters = {
            "served_by": dict(sorted(self.served_by.items())),
            "cpu": {"max_percent": round(self.cpu_max_percent, 1), "samples": self.cpu_samples},
            "loop_lag_us": percentiles_us(self.loop_lag),
            "failures_by_kind": dict(sorted(self.failures_by_kind.items())),
        }
        (raw_dir / "counters.json").write_text(json.dumps(counters, indent=2) + "\n")
        with (raw_dir / "timeline.jsonl").open("w") as out:
            # Sorted by time only: rows of one time may mix a store of None and a string, which do not compare.
            for row in sorted(self.timeline, key=lambda row: row[0]):
                t, endpoint, ok, kind = row[:4]
                line = {"t": t, "endpoint": endpoint, "ok": ok, "kind": kind}
                store = row[4] if len(row) > 4 else None  # a worker of an older version ships 4 fields
                if store is not None:
                    line["store"] = store
                out.write(json.dumps(line) + "\n")
        self.flush_events(raw_dir)

    def write_hlogs(self, hlog_dir: Path, run_start_s: float) -> list[Path]:
        """One HdrHistogram interval log per kind and endpoint (hlog_dir/<kind>-<endpoint>.hlog), one interval a
        second, for HistogramLogAnalyzer and the wrk2 / HdrHistogram tools. Values are µs: pass
        -outputValueUnitRatio 1000 to HistogramLogProcessor for ms."""
        series: dict[tuple[str, str], list[int]] = defaultdict(list)
        for t, endpoint, kind in sorted(self.histograms):
            series[(kind, endpoint)].append(t)  # decoded one at a time below: all at once would not fit in memory
        hlog_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for (kind, endpoint), seconds in sorted(series.items()):
            path = hlog_dir / f"{kind}-{_slug(endpoint)}.hlog"
            with path.open("w") as out:
                writer = HistogramLogWriter(out)
                writer.output_comment(f"[sessionproof: {kind} latency of {endpoint}, in microseconds]")
                writer.output_log_format_version()
                # Not output_start_time: hdrh 0.10 formats that line with a method datetime lacks.
                writer.output_comment(f"[StartTime: {run_start_s:.3f} (seconds since epoch)]")
                writer.output_legend()
                for t in seconds:
                    writer.output_interval_histogram(
                        self.histogram((t, endpoint, kind)),
                        max(t - run_start_s, 0.0),
                        t + 1 - run_start_s,
                        max_value_unit_ratio=1000.0,
                    )
            written.append(path)
        return written

    def flush_events(self, raw_dir: Path) -> None:
        if not self.events:
            return
        with (raw_dir / "events.jsonl").open("a") as out:
            for event in self.events:
                out.write(json.dumps(event) + "\n")
        self.events = []


def _slug(endpoint: str) -> str:
    """'POST /cart/[item]' -> 'post-cart-item': a file name."""
    return "-".join("".join(c if c.isalnum() else " " for c in endpoint.lower()).split())


def _encoded(histogram: HdrHistogram | str) -> str:
    """A histogram as HdrHistogram's compressed base64 encoding (kept as is when already encoded)."""
    return histogram if isinstance(histogram, str) else histogram.encode().decode("ascii")


def _decoded(encoded: str) -> HdrHistogram:
    histogram = new_histogram()
    histogram.decode_and_add(encoded)
    return histogram
