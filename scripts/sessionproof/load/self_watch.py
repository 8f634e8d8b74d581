"""The load generator watching itself, in every Locust process: its CPU, how late its event loop wakes, and its
garbage collector kept off what the run holds. The first two decide whether a run is valid (validity.py)."""

from __future__ import annotations

import gc
import time

import gevent
import psutil

from sessionproof.load.recorder import Recorder

CPU_SAMPLE_INTERVAL_S = 1.0
LOOP_LAG_SLEEP_S = 0.001
# What the run keeps (the history, the timeline) only grows, and Python's full garbage collection walks all of it:
# with a 2-hour campaign's history in memory one full collection took 0.66 s of CPU (a synthetic history of that
# shape), a spike the generator's CPU bound counts; that campaign's peak rose from 26 % to 81 % while its load did
# not change. Freezing what has survived this long takes it out of every later collection.
GC_FREEZE_INTERVAL_S = 10.0


def start(recorder: Recorder) -> None:
    gevent.spawn(_sample_cpu, recorder)
    gevent.spawn(_probe_loop_lag, recorder)
    gevent.spawn(_freeze_long_lived)


def _sample_cpu(recorder: Recorder) -> None:
    process = psutil.Process()
    process.cpu_percent(None)
    while True:
        gevent.sleep(CPU_SAMPLE_INTERVAL_S)
        recorder.cpu(process.cpu_percent(None))


def _freeze_long_lived() -> None:
    while True:
        gevent.sleep(GC_FREEZE_INTERVAL_S)
        gc.freeze()


def _probe_loop_lag(recorder: Recorder) -> None:
    """How late the event loop wakes a greenlet that sleeps LOOP_LAG_SLEEP_S: time every response waits too,
    before the harness sees it. Generator CPU alone misses it."""
    sleep_ns = int(LOOP_LAG_SLEEP_S * 1e9)
    while True:
        started_ns = time.perf_counter_ns()
        gevent.sleep(LOOP_LAG_SLEEP_S)
        recorder.lag((time.perf_counter_ns() - started_ns - sleep_ns) // 1000)
