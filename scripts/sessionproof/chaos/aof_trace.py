"""Which bytes of a node's AOF its last fsync covered: the stand-in for what a power loss leaves on disk.

`make power-loss` traces each data node's writes and fsyncs with strace (`strace -f -ttt -e trace=write,fdatasync,
fsync -p PID`, every thread: the main thread writes the AOF, with appendfsync everysec a background thread
fsyncs it). A write is on disk once an fsync of the same file *began* after the write *returned*; the last fsync
that returned 0 before the node died bounds what survives a power loss. The bytes after it were in the page cache
only, which a power loss takes: the worst case POSIX allows, and the one `make power-loss` applies.

AOF files are only appended to, so what survives is a prefix: the file's size when tracing began, plus the bytes of
every write that returned before the last completed fsync began.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# strace -f -ttt lines: "<tid> <unix time> <call>(<fd>, ...) = <result>", split by strace when threads interleave
# into "<call>(<fd>, ... <unfinished ...>" and "<... <call> resumed>...) = <result>".
_LINE = re.compile(r"^(?P<tid>\d+)\s+(?P<time>\d+\.\d+)\s+(?P<rest>.*)$")
_CALL = re.compile(r"^(?P<call>write|fdatasync|fsync)\((?P<fd>\d+)(?P<args>.*)$")
_RESUMED = re.compile(r"^<\.\.\. (?P<call>write|fdatasync|fsync) resumed>.*\)\s+=\s+(?P<result>-?\d+)")
_RESULT = re.compile(r"\)\s+=\s+(?P<result>-?\d+)")
FSYNC_CALLS = ("fdatasync", "fsync")


@dataclass(frozen=True)
class AofTrace:
    written_bytes: int  # every write to the AOF that returned while traced
    durable_bytes: int  # of those, the ones the last completed fsync covered
    fsyncs: int  # fsyncs of the AOF that returned 0
    last_fsync_unix_s: float | None  # when the last of them began
    unfinished_write: bool  # a write still in progress when the node died: its bytes are not known

    @property
    def unsynced_bytes(self) -> int:
        return self.written_bytes - self.durable_bytes

    def surviving_size(self, final_size: int) -> int:
        """The AOF's size after a power loss, from its size when the node died."""
        return final_size - self.unsynced_bytes


def parse(lines, fd: int) -> AofTrace:
    """The trace of one node (every thread), for the AOF open as `fd`."""
    written = durable = fsyncs = 0
    last_fsync_at = None
    pending: dict[str, tuple[str, float, int]] = {}  # tid -> (call, began at, bytes written before it began)
    for line in lines:
        match = _LINE.match(line.strip())
        if not match:
            continue
        tid, at, rest = match["tid"], float(match["time"]), match["rest"]
        call = _CALL.match(rest)
        if call and int(call["fd"]) == fd:
            if "<unfinished ...>" in rest:
                pending[tid] = (call["call"], at, written)
                continue
            result = _RESULT.search(rest)
            began, returned = (at, written), int(result["result"]) if result else -1
        elif (resumed := _RESUMED.match(rest)) and tid in pending and pending[tid][0] == resumed["call"]:
            name, began_at, written_before = pending.pop(tid)
            call, began, returned = {"call": name}, (began_at, written_before), int(resumed["result"])
        else:
            continue
        if call["call"] == "write" and returned > 0:
            written += returned
        elif call["call"] in FSYNC_CALLS and returned == 0:
            fsyncs += 1
            last_fsync_at, durable = began  # what had returned when this fsync began is on disk
    unfinished = any(call == "write" for call, _, _ in pending.values())
    return AofTrace(written, durable, fsyncs, last_fsync_at, unfinished)
