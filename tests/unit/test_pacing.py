"""Coordinated omission: a server stall shows in the intended-start p99, not in the service-time p99."""

from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from sessionproof.histograms import new_histogram
from sessionproof.load.pacing import Pacer, paced, timing_of

STALL_S = 0.5
STALL_AT_REQUEST = 40


class StallingHandler(BaseHTTPRequestHandler):
    served = 0
    lock = threading.Lock()

    def do_GET(self):
        with StallingHandler.lock:
            StallingHandler.served += 1
            number = StallingHandler.served
        if number == STALL_AT_REQUEST:
            time.sleep(STALL_S)  # the injected stall: one request, half a second
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def stalling_server():
    StallingHandler.served = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), StallingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_a_stall_shows_in_the_intended_start_p99_and_not_in_the_service_time_p99(stalling_server):
    service, intended = new_histogram(), new_histogram()
    pacer = Pacer(rate_per_s=100, jitter=False)
    with requests.Session() as http:
        for _ in range(200):  # bounded: 2 s of schedule plus the stall
            response, timing = paced(pacer, lambda: http.get(stalling_server, timeout=5))
            assert response.status_code == 200
            service.record_value(timing.service_us)
            intended.record_value(timing.intended_us)
    assert service.get_max_value() >= STALL_S * 1e6 * 0.9  # the stall happened
    assert service.get_value_at_percentile(99) < 100_000  # closed-loop view: one slow sample out of 200
    # About STALL_S * rate = 50 requests were due during the stall; each waited for it.
    assert intended.get_value_at_percentile(99) >= STALL_S * 1e6 * 0.8
    assert intended.get_value_at_percentile(90) >= 0.2 * 1e6


def test_the_schedule_is_never_reset_after_a_late_request():
    now = [0.0]
    pacer = Pacer(rate_per_s=10, clock=lambda: now[0], jitter=False)
    assert [pacer.take_slot() for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    now[0] = 5.0  # a long stall
    assert pacer.take_slot() == pytest.approx(0.3)
    assert pacer.delay_until(0.3) == 0.0


def test_timing_counts_from_the_slot_when_late_and_from_the_send_when_early():
    late = timing_of(slot_s=1.0, sent_s=1.5, done_s=1.6)
    assert (late.service_us, late.intended_us) == (100_000, 600_000)
    on_time = timing_of(slot_s=1.0, sent_s=1.0, done_s=1.001)
    assert on_time.service_us == on_time.intended_us == 1000


def test_the_exchange_alone_is_the_service_time_and_the_intended_time_loses_the_same():
    from sessionproof.load.pacing import Timing, exchange_only

    # 3.0 ms around the call, of which Locust timed 2.2 ms of HTTP exchange; the slot was 1 ms before the send.
    assert exchange_only(Timing(service_us=3000, intended_us=4000), 2.2) == Timing(2200, 3200)
    assert exchange_only(Timing(3000, 4000), None) == Timing(3000, 4000)  # no exchange time: as measured
    assert exchange_only(Timing(3000, 4000), 3.5) == Timing(3000, 4000)  # never longer than measured


def test_server_timing_gives_the_apps_time_and_store_time_in_us():
    from sessionproof.load.pacing import server_timing_us

    assert server_timing_us("app;dur=1.234, store;dur=0.456") == {"app": 1234, "store": 456}
    assert server_timing_us('cache;desc="hit", app;dur=2;desc=x') == {"app": 2000}
    assert server_timing_us(None) is None and server_timing_us("app;dur=oops") is None


def test_a_backlog_goes_out_at_once_without_a_catch_up_factor():
    now = [0.0]
    pacer = Pacer(rate_per_s=10, clock=lambda: now[0], jitter=False)
    now[0] = 5.0  # 50 slots missed
    delays = [pacer.delay_until(pacer.take_slot()) for _ in range(50)]
    assert delays == [0.0] * 50


def test_a_catch_up_factor_spreads_a_backlog_at_that_multiple_of_the_rate():
    now = [0.0]
    pacer = Pacer(rate_per_s=10, clock=lambda: now[0], jitter=False, catch_up_factor=2)
    assert pacer.delay_until(pacer.take_slot()) == 0.0  # on time
    now[0] = 5.0  # a 5 s stall: 49 slots missed
    sent = []
    for _ in range(60):
        slot = pacer.take_slot()
        now[0] += pacer.delay_until(slot)  # the sleep; the request itself takes no time here
        sent.append((slot, now[0]))
    late_gaps = [b_at - a_at for (_, a_at), (b_slot, b_at) in itertools.pairwise(sent) if b_at > b_slot + 1e-9]
    assert len(late_gaps) == 59 and all(gap == pytest.approx(0.05) for gap in late_gaps)  # 2 x 10/s while behind
    # The backlog drains (5 s behind, gaining 0.05 s a request: 100 requests), then the schedule rules again.
    for _ in range(100):
        slot = pacer.take_slot()
        now[0] += pacer.delay_until(slot)
    slot = pacer.take_slot()
    assert pacer.delay_until(slot) == pytest.approx(slot - now[0]) and slot >= now[0]


def test_a_catch_up_factor_must_let_a_backlog_drain():
    with pytest.raises(ValueError, match="over 1"):
        Pacer(rate_per_s=10, catch_up_factor=1)
