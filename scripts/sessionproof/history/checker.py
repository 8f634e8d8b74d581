"""The one checker: every correctness verdict of a run is `check(history)`.

Each session is judged on its own, as a set of items that grows (Jepsen's set-full checker, one set per
session), plus what a session promises: it names its own user, it ends when a logout is acknowledged,
and it holds only what was added to it. The operations are paired per process (an invoke, then its
completion; an invoke never completed is `info`) and ordered by real time, whatever process sent them:
an answer is judged against what was acknowledged before its request was *invoked* (real-time order,
as linearizability asks), so concurrent operations are never held against each other.

An answer that shows a session's state (an ok login, add or read: user and cart) is an *observation*.
The anomaly classes (history.ANOMALY_CLASSES):

- lost_writes: an item whose add was acknowledged (or that an answer showed) is missing from the
  latest observation of its session that began after that (the final read is usually the latest),
  while the session was not being logged out. Counted per item.
- lost_updates: the same, for an item whose add overlapped another add to the same session (two tabs
  writing at once: stock Flask-Session's last write wins). Counted per item.
- stale_reads: an observation that misses an item known before it began, the item being present in a
  later one (the write was not lost, the answer was old), or that is anonymous while a later one shows
  the session again. Counted per observation.
- duplicates: an item shown more than once in one cart (one add applied twice, e.g. an idempotent
  re-send that took effect twice). Counted per item.
- resurrections: an observation, begun after a logout or logout-all of the session was acknowledged,
  that shows the user or items: the session came back. Counted per session.
- sessions_lost: a session, logged in and never logged out, whose latest observation is anonymous (the
  store no longer has it). Counted per session; its acknowledged items are lost writes too.
- foreign_sessions: an observation naming another user, or holding items added to another session.
  Counted per observation.
- phantom_writes: an observation holding an item no add to this session may have written (every add of
  it was refused with a 4xx, or it was never sent anywhere). Counted per item.

Indeterminate adds (info) may take effect or not, at any time, but at most once (a duplicate otherwise);
once an answer shows the item it is known, and from then on it must stay. An acknowledged item that no
observation began after is *unread*: counted and shown (unread_writes), never taken as kept.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sessionproof.history import ANOMALY_CLASSES, CORRECTNESS_FIGURES, FINAL_READ_PROCESS, NEMESIS_PROCESS

MAX_EXAMPLES_PER_CLASS = 20
NEVER = math.inf


@dataclass
class Op:
    """One operation: its invoke and its completion merged."""

    process: str
    kind: str
    f: str
    type: str  # ok, fail or info (an invoke never completed is info)
    session: str | None
    invoke_us: int
    complete_us: float  # NEVER for an invoke never completed: it may take effect at any time
    item: str | None = None
    key: str | None = None
    user_asked: str | None = None  # login: the user it asked for
    user: str | None = None  # ok answers: the user the session named
    cart: list[str] | None = None  # ok answers of login, add, read
    store: str | None = None
    origin: str | None = None  # the session it was sent from, when its answer left the client in another

    @property
    def observes(self) -> bool:
        return self.type == "ok" and self.cart is not None


@dataclass
class Verdict:
    figures: dict[str, int]
    examples: list[dict] = field(default_factory=list)  # up to MAX_EXAMPLES_PER_CLASS per class
    lost_items: list[dict] = field(default_factory=list)  # every lost item: when and where acknowledged
    moments: dict[str, list[float]] = field(default_factory=dict)  # class -> when each anomaly was seen, µs

    @property
    def violations(self) -> dict[str, int]:
        return {name: self.figures[name] for name in ANOMALY_CLASSES if self.figures[name]}

    def count_between(self, name: str, first_us: float, last_us: float) -> int:
        """How many anomalies of a class were seen between two history times (µs, inclusive)."""
        return sum(first_us <= t <= last_us for t in self.moments.get(name, ()))


def pair(history: list[dict]) -> list[Op]:
    """Operations from history lines: each process's invoke with its next completion. A completion without an
    invoke is an error in the history (ValueError)."""
    pending: dict[str, dict] = {}
    ops: list[Op] = []
    for line in sorted(history, key=lambda line: line["time_us"]):  # stable: a process's own order is kept
        process = line["process"]
        if process == NEMESIS_PROCESS:
            continue  # what was broken when: not an operation of a session
        if line["type"] == "invoke":
            if process in pending:
                ops.append(_op(pending.pop(process), None))  # invoked again: the earlier one never completed
            pending[process] = line
        else:
            invoke = pending.pop(process, None)
            if invoke is None or invoke["f"] != line["f"]:
                raise ValueError(
                    f"process {process}: a {line['type']} of {line['f']} at {line['time_us']} µs without its invoke"
                )
            ops.append(_op(invoke, line))
    ops += [_op(invoke, None) for invoke in pending.values()]
    return sorted(ops, key=lambda op: (op.invoke_us, op.complete_us))


def _op(invoke: dict, done: dict | None) -> Op:
    type_ = done["type"] if done else "info"
    sent = invoke.get("session")
    ok = done if type_ == "ok" else {}
    # An answer with state belongs to the session it left the client in: a login's new one, or a fresh one the
    # server gave in place of a session it no longer had; a login that did not succeed made none.
    session = ok.get("session", sent) if "cart" in ok else sent
    if invoke["f"] == "login" and "cart" not in ok:
        session = None
    return Op(
        process=invoke["process"],
        kind=invoke.get("kind", ""),
        f=invoke["f"],
        type=type_,
        session=session,
        invoke_us=invoke["time_us"],
        complete_us=done["time_us"] if done else NEVER,
        item=invoke.get("item"),
        key=invoke.get("key"),
        user_asked=invoke.get("user") if invoke["f"] == "login" else None,
        user=ok.get("user"),
        cart=list(ok["cart"]) if "cart" in ok else None,
        store=ok.get("store"),
        origin=sent if sent != session else None,
    )


def check(history: list[dict]) -> Verdict:
    """The correctness figures of a history, examples of each anomaly, and every lost item."""
    ops = pair(history)
    judge = _Judge(ops)
    for session in judge.sessions():
        judge.session(session)
    return judge.verdict()


class _Judge:
    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.figures = dict.fromkeys(CORRECTNESS_FIGURES, 0)
        self.examples: list[dict] = []
        self.moments: dict[str, list[float]] = {}
        self.counted: set[tuple] = set()  # (class, session, item) already counted, for classes counted once
        self.lost_items: list[dict] = []
        self.by_session: dict[str, list[Op]] = defaultdict(list)
        self.sessions_of_item: dict[str, set[str]] = defaultdict(set)
        self.logouts_all_by_user: dict[str, list[Op]] = defaultdict(list)
        for op in ops:
            if op.session is not None:
                self.by_session[op.session].append(op)
            if op.f == "add" and op.item is not None:
                self.sessions_of_item[op.item].add(op.session)
        for op in ops:
            if op.f == "logout_all" and op.type != "fail":
                user = self.creator_user(op.session)
                if user is not None:
                    self.logouts_all_by_user[user].append(op)

    def sessions(self) -> list[str]:
        return list(self.by_session)

    def creator(self, session: str | None) -> Op | None:
        return next((op for op in self.by_session.get(session, ()) if op.f == "login" and op.type == "ok"), None)

    def creator_user(self, session: str | None) -> str | None:
        login = self.creator(session)
        return login.user if login else None

    def note(self, name: str, count: int = 1, once: tuple | None = None, **detail) -> None:
        """Count an anomaly (once per `once` key when given) and keep it as an example while there is room."""
        if once is not None:
            if (name, *once) in self.counted:
                return
            self.counted.add((name, *once))
        self.figures[name] += count
        seen_us = detail.get("time_us", detail.get("acked_us"))
        if seen_us is not None:
            self.moments.setdefault(name, []).extend([seen_us] * count)
        if sum(e["class"] == name for e in self.examples) < MAX_EXAMPLES_PER_CLASS:
            self.examples.append({"class": name, **detail})

    # ---------------------------------------------------------------- ends
    def ends(self, session: str, ops: list[Op]) -> tuple[float, float]:
        """(possible end, certain end) in µs: from when a logout may have ended the session, and from when one
        surely had (acknowledged). A logout that failed (4xx) did not happen."""
        possible, certain = NEVER, NEVER
        for op in ops:
            if op.f in ("logout", "logout_all") and op.type != "fail":
                possible = min(possible, op.invoke_us)
                if op.type == "ok":
                    certain = min(certain, op.complete_us)
        login = self.creator(session)
        if login is not None and login.user is not None:
            for op in self.logouts_all_by_user.get(login.user, ()):
                if login.invoke_us < op.complete_us:  # the session may have existed when it ran
                    possible = min(possible, op.invoke_us)
                if op.type == "ok" and login.complete_us < op.invoke_us:  # it surely did
                    certain = min(certain, op.complete_us)
        return possible, certain

    # ------------------------------------------------------------- session
    def session(self, session: str) -> None:
        ops = self.by_session[session]
        login = self.creator(session)
        user = login.user if login else None
        possible_end, certain_end = self.ends(session, ops)
        observations = [op for op in ops if op.observes]
        live = [op for op in observations if op.invoke_us < possible_end]
        attempted = self._attempted(ops)
        self.figures["sessions"] += 1
        self.figures["checks"] += len(observations)
        for op in observations:
            self._judge_contents(session, op, user, attempted)
            if op.invoke_us > certain_end and (op.user is not None or op.cart):
                self.note(
                    "resurrections", once=(session,), session=session[:12], process=op.process, f=op.f,
                    time_us=op.invoke_us, logged_out_us=certain_end, user=op.user, items=len(op.cart),
                )  # fmt: skip
        self._judge_items(session, ops, live, user, possible_end)

    def _attempted(self, ops: list[Op]) -> dict[str, list[Op]]:
        """Each item an add to this session may have written, with its adds; an operation whose answer moved the
        client here from another session may have brought that session's items along."""
        attempted: dict[str, list[Op]] = defaultdict(list)
        for op in ops:
            if op.f == "add" and op.item is not None:
                attempted[op.item].append(op)
        for moved in (op for op in ops if op.origin is not None):  # a login carries the cart along
            for earlier in self.by_session.get(moved.origin, ()):
                if earlier.f == "add" and earlier.item is not None and earlier.invoke_us < moved.complete_us:
                    attempted[earlier.item].append(earlier)
        return attempted

    def _judge_contents(self, session: str, op: Op, user: str | None, attempted: dict[str, list[Op]]) -> None:
        where = {"session": session[:12], "process": op.process, "f": op.f, "time_us": op.invoke_us}
        foreign_items = [i for i in op.cart if i not in attempted and self.sessions_of_item.get(i, set()) - {session}]
        if (op.user is not None and op.user != user) or foreign_items:
            self.note("foreign_sessions", user=op.user, expected_user=user, items=foreign_items[:3], **where)
        for item in dict.fromkeys(op.cart):
            if item in foreign_items:
                continue
            adds = attempted.get(item, [])
            if all(add.type == "fail" for add in adds):  # never sent here, or every add refused
                self.note("phantom_writes", once=(session, item), item=item, **where)
        for item, count in Counter(op.cart).items():
            if count > 1:
                self.note("duplicates", once=(session, item), item=item, times=count, **where)

    # --------------------------------------------------------------- items
    def _judge_items(self, session: str, ops: list[Op], live: list[Op], user: str | None, possible_end: float) -> None:
        if not live:
            self._tally_writes(ops, live, set(), possible_end)
            return
        latest = max(live, key=lambda op: (op.invoke_us, op.complete_us))
        # The session lost: logged in, and the latest answer (and those just before it) anonymous.
        lost_from = len(live)
        if user is not None:
            while lost_from > 0 and live[lost_from - 1].user is None:
                lost_from -= 1
        if lost_from < len(live):
            self.note("sessions_lost", session=session[:12], user=user, time_us=live[lost_from].invoke_us)
        stale: dict[int, Op] = {}
        for op in live[:lost_from]:
            if user is not None and op.user is None:  # anonymous, yet a later answer shows the session again
                stale[id(op)] = op
        lost: set[str] = set()
        adds = [op for op in ops if op.f == "add"]
        for item, known_us, ack in self._known_items(ops, live):
            after = [op for op in live if op.invoke_us > known_us or (ack is not None and op is ack)]
            if not after:
                continue  # unread: tallied below
            if item not in max(after, key=lambda op: (op.invoke_us, op.complete_us)).cart:
                lost.add(item)
                concurrent = ack is not None and any(
                    other.item != item and other.invoke_us < ack.complete_us and ack.invoke_us < other.complete_us
                    for other in adds
                )
                name = "lost_updates" if concurrent else "lost_writes"
                self.note(
                    name, session=session[:12], item=item, process=ack.process if ack else None,
                    acked_us=ack.complete_us if ack else None, store=ack.store if ack else None,
                    known_us=known_us, latest_us=latest.invoke_us, latest_by=latest.process,
                )  # fmt: skip
                self.lost_items.append(
                    {"session": session[:12], "item": item, "class": name,
                     "acked_us": ack.complete_us if ack else None, "store": ack.store if ack else None}
                )  # fmt: skip
            else:
                for op in after:
                    if item not in op.cart and op is not ack:
                        stale[id(op)] = op
        for op in stale.values():
            self.note("stale_reads", session=session[:12], process=op.process, f=op.f, time_us=op.invoke_us)
        self._tally_writes(ops, live, lost, possible_end)

    def _known_items(self, ops: list[Op], live: list[Op]):
        """(item, known from µs, its acknowledging add or None) for each item acknowledged or shown live."""
        known: dict[str, float] = {}
        acks: dict[str, Op] = {}
        for op in ops:
            acked = op.f == "add" and op.type == "ok" and op.item is not None
            if acked and op.complete_us < known.get(op.item, NEVER):
                known[op.item], acks[op.item] = op.complete_us, op
        for op in live:
            for item in op.cart:
                known[item] = min(known.get(item, NEVER), op.complete_us)
        return [(item, known_us, acks.get(item)) for item, known_us in known.items()]

    def _tally_writes(self, ops: list[Op], live: list[Op], lost: set[str], possible_end: float) -> None:
        by_item: dict[str, list[Op]] = defaultdict(list)
        for op in ops:
            if op.f == "add" and op.item is not None:
                by_item[op.item].append(op)
        shown = {item for op in live for item in op.cart}
        for item, adds in by_item.items():
            ack = min((op for op in adds if op.type == "ok"), key=lambda op: op.complete_us, default=None)
            if ack is not None:
                self.figures["acknowledged_writes"] += 1
                # Its own answer showed it then; only an answer begun afterwards says it was kept. A session
                # logged out owes no read: its items were ended on purpose.
                read_after = any(op.invoke_us > ack.complete_us for op in live)
                if item not in lost and not read_after and possible_end == NEVER:
                    self.figures["unread_writes"] += 1
            elif any(op.type == "info" for op in adds):
                self.figures["indeterminate_writes"] += 1
                self.figures["indeterminate_took_effect"] += item in shown

    def verdict(self) -> Verdict:
        return Verdict(self.figures, self.examples, self.lost_items, self.moments)


def final_read_sessions(history: list[dict]) -> list[str]:
    """Every session the history names (a login's, or one a request carried), in first-seen order: the final
    read reads each back, the logged-out ones included (they must read as gone)."""
    seen: dict[str, None] = {}
    for line in history:
        if line.get("session") and line["process"] != FINAL_READ_PROCESS:
            seen.setdefault(line["session"], None)
    return list(seen)
