"""Judging what a bounced user sees against that user's own model of its session.

Every successful response carrying session state (user, cart, version) is
compared with what this user knows it was acknowledged. A mismatch is one of:
- foreign_session: another user's data (a user name or an item that is not
  ours): a security failure;
- session_lost: we were logged in and the server says we are not (or hands us a
  fresh, empty session);
- stale_read: an older version than one already acknowledged;
- lost_write: the version is current but an acknowledged item is missing.
A write whose outcome is unknown (error or timeout) is indeterminate: its item
may appear later without being a mismatch, and its absence is no lost write.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Verdict:
    mismatches: list[str]
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def adoptable(self) -> bool:
        """Correct, or only lost writes: the server's state becomes the new truth, so a loss counts once."""
        return all(m == "lost_writes" for m in self.mismatches)


@dataclass
class SessionModel:
    user: str | None
    item_prefix: str
    cart: list[str] = field(default_factory=list)  # acknowledged items, in order
    version: int = 0  # highest acknowledged version
    uncertain: set[str] = field(default_factory=set)  # items of indeterminate writes
    _written: int = 0

    def next_item(self) -> str:
        self._written += 1
        return f"{self.item_prefix}-{self._written}"

    def logged_in(self, body: dict) -> None:
        self.user = body.get("user")
        self.cart = list(body.get("cart", []))
        self.version = int(body.get("version", 0))
        self.uncertain.clear()

    def write_indeterminate(self, item: str) -> None:
        self.uncertain.add(item)

    def observe_read(self, body: dict) -> Verdict:
        verdict = self._judge(body)
        if verdict.adoptable:
            self._adopt(body)
        return verdict

    def observe_write(self, item: str, body: dict) -> Verdict:
        verdict = self._judge(body)
        if item not in body.get("cart", []) and not verdict.mismatches:
            verdict = Verdict(["lost_writes"], f"acknowledged write of {item} is not in its own response")
        if body.get("version", 0) <= self.version and not verdict.mismatches:
            verdict = Verdict(["stale_reads"], f"write answered version {body.get('version')} <= {self.version}")
        if verdict.adoptable:
            self._adopt(body)
        return verdict

    def _adopt(self, body: dict) -> None:
        self.cart = list(body.get("cart", []))
        self.version = max(self.version, int(body.get("version", 0)))
        self.uncertain -= set(self.cart)

    def _judge(self, body: dict) -> Verdict:
        user, cart, version = body.get("user"), list(body.get("cart", [])), int(body.get("version", 0))
        foreign_items = [i for i in cart if not i.startswith(self.item_prefix + "-")]
        if (user is not None and user != self.user) or foreign_items:
            return Verdict(
                ["foreign_sessions"], f"expected user {self.user}, got {user}; foreign items {foreign_items[:3]}"
            )
        if self.user is not None and user is None:
            return Verdict(["sessions_lost"], f"logged out: got an anonymous session at version {version}")
        if self.version > 0 and version == 0:
            return Verdict(["sessions_lost"], "got a new, empty session")
        if version < self.version:
            return Verdict(["stale_reads"], f"version {version} after {self.version} was acknowledged")
        missing = _missing(self.cart, cart)
        if missing:
            return Verdict(["lost_writes"] * len(missing), f"acknowledged items missing: {missing[:5]}")
        return Verdict([])


def _missing(expected: list[str], actual: list[str]) -> list[str]:
    return list((Counter(expected) - Counter(actual)).elements())


def lost_updates(acknowledged_items: list[str], cart: list[str]) -> list[str]:
    """Items whose concurrent add was acknowledged (200) but that the cart does not hold."""
    return _missing(acknowledged_items, cart)
