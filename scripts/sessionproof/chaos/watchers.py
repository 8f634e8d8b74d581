"""Background observers during an experiment: Sentinel's pub/sub events and split-brain moments."""

from __future__ import annotations

import threading
import time

import redis

from sessionproof.runs import EventLog
from sessionproof.runtimes.interface import Runtime

SPLIT_BRAIN_POLL_S = 0.2


class SentinelWatcher(threading.Thread):
    """Subscribes to every Sentinel's event channels (+sdown, +odown, +switch-master, ...)."""

    def __init__(self, runtime: Runtime, log: EventLog, stop: threading.Event):
        super().__init__(daemon=True, name="sentinel-watcher")
        self.runtime, self.log, self.stop_event = runtime, log, stop

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._watch, args=(node.name, node.host, node.port), daemon=True)
            for node in self.runtime.nodes("sentinel")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _watch(self, name: str, host: str, port: int) -> None:
        while not self.stop_event.is_set():
            client = redis.Redis(
                host=host,
                port=port,
                password=self.runtime.config.get("REDIS_PASSWORD"),
                socket_timeout=1.0,
                socket_connect_timeout=0.5,
                decode_responses=True,
            )
            try:
                pubsub = client.pubsub()
                pubsub.psubscribe("*")
                while not self.stop_event.is_set():
                    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if message and message["type"] == "pmessage" and message["channel"] != "__sentinel__:hello":
                        self.log.write("sentinel", channel=message["channel"], message=message["data"], sentinel=name)
                pubsub.close()
            except redis.RedisError:
                self.stop_event.wait(0.5)  # this Sentinel is down (a fault, perhaps): try again shortly
            finally:
                client.close()


class SplitBrainWatcher(threading.Thread):
    """Polls every Redis node's own role; records each moment two or more claim role:master."""

    def __init__(self, runtime: Runtime, log: EventLog, stop: threading.Event):
        super().__init__(daemon=True, name="split-brain-watcher")
        self.runtime, self.log, self.stop_event = runtime, log, stop

    def run(self) -> None:
        previous: list[str] = []
        while not self.stop_event.wait(SPLIT_BRAIN_POLL_S):
            masters = sorted(name for name, role in self.runtime.redis_roles().items() if role == "master")
            if len(masters) >= 2 and masters != previous:
                self.log.write("split_brain", masters=masters)
            elif len(masters) < 2 and len(previous) >= 2:
                self.log.write("split_brain_end", masters=masters)
            previous = masters


def start_watchers(runtime: Runtime, log: EventLog) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    watchers = [SentinelWatcher(runtime, log, stop), SplitBrainWatcher(runtime, log, stop)]
    for watcher in watchers:
        watcher.start()
    return stop, watchers


def stop_watchers(stop: threading.Event, watchers: list[threading.Thread], timeout_s: float = 5) -> None:
    stop.set()
    deadline = time.monotonic() + timeout_s
    for watcher in watchers:
        watcher.join(max(0.1, deadline - time.monotonic()))
