"""Disk faults on this host: a folder made immutable (chattr +i), so that even root's writes to files already open
in it fail (EPERM), and made writable again. Redis then cannot append to its AOF: it refuses writes and PING with
MISCONF, as on a full or failing disk, and recovers by itself once the folder is writable again.

Needs a filesystem with inode flags (ext4, xfs, btrfs; not tmpfs or overlayfs) and chattr (e2fsprogs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sessionproof.runtimes.interface import StackError

CHATTR_TIMEOUT_S = 10


def _chattr(flag: str, folder: Path) -> subprocess.CompletedProcess:
    chattr = shutil.which("chattr")
    if chattr is None:
        raise StackError("chattr is missing: install e2fsprogs (apt-get install e2fsprogs)")
    return subprocess.run(
        [chattr, "-R", flag, str(folder)], capture_output=True, text=True, timeout=CHATTR_TIMEOUT_S, check=False
    )


def freeze(folder: Path) -> None:
    """The folder and every file in it immutable: no write, no new file, no rename, even for root."""
    result = _chattr("+i", folder)
    if result.returncode != 0:
        writable_again(folder)  # a partial freeze is undone before saying why it failed
        raise StackError(
            f"cannot make {folder} immutable ({result.stderr.strip() or result.returncode}); disk faults need root "
            "and a filesystem with inode flags (ext4, xfs, btrfs), such as the one STATE_DIR is on"
        )


def writable_again(folder: Path) -> None:
    """Idempotent: the immutable flag off the folder and everything in it; nothing to do where it is absent or the
    filesystem has no such flag (nothing could have been frozen there)."""
    if folder.exists() and shutil.which("chattr") is not None:  # without chattr, nothing was frozen here
        _chattr("-i", folder)


def is_frozen(folder: Path) -> bool:
    """Whether the folder itself carries the immutable flag (lsattr -d)."""
    lsattr = shutil.which("lsattr")
    if lsattr is None or not folder.exists():
        return False
    result = subprocess.run([lsattr, "-d", str(folder)], capture_output=True, text=True, timeout=CHATTR_TIMEOUT_S)
    flags = result.stdout.split(maxsplit=1)[0] if result.returncode == 0 and result.stdout else ""
    return "i" in flags


__all__ = ["freeze", "is_frozen", "writable_again"]
