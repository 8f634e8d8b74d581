"""The idempotency record: what the hardened layer keeps of a committed write's response, for a retry.

As small as its job allows (README, "Sizing"): a MessagePack array without field names, 16 bytes of
fingerprint, and only the headers that differ from what every session response has.
"""

from __future__ import annotations

import msgspec

# Headers a replayed response must repeat; the rest (X-Served-By, ...) belong to whoever replays it.
RECORDED_HEADERS = ("Content-Type", "Set-Cookie", "Vary")
# What every session response has: not stored in a record, put back on replay.
DEFAULT_HEADERS = (("Content-Type", "application/json"), ("Vary", "Cookie"))
FINGERPRINT_BYTES = 16  # 128 bits of SHA-256: a collision between two requests under one key is not a concern


class Record(msgspec.Struct, array_like=True, frozen=True):
    """The recorded response of a committed write, stored as a MessagePack array (no field names)."""

    fingerprint: bytes
    status: int
    headers: list[tuple[str, str]]  # RECORDED_HEADERS that differ from DEFAULT_HEADERS
    body: bytes


RECORD_DECODER = msgspec.msgpack.Decoder(Record)


def decode_record(raw: bytes) -> Record:
    """A stored record; one in the earlier format (a map with a hex fingerprint, kept up to 600 s by the code
    before it) is read too, so a rolling upgrade replays it instead of failing the request."""
    try:
        return RECORD_DECODER.decode(raw)
    except msgspec.ValidationError:
        legacy = msgspec.msgpack.decode(raw)
        if not isinstance(legacy, dict):
            raise
        return Record(
            bytes.fromhex(legacy["fingerprint"])[:FINGERPRINT_BYTES],  # the same SHA-256, cut the same way
            legacy["status"],
            [(name, value) for name, value in legacy["headers"] if (name, value) not in DEFAULT_HEADERS],
            legacy["body"],
        )
