"""The one reader of a run folder's files: meta.json, summary.json and everything in raw/.

Every damaged or missing file raises RunFileError, whose message names the file (and the
line, for JSON lines) and the fix. Callers that must go on past a damaged run (the matrix)
catch it; the others let it reach their CLI, which prints it and exits 2.

A file may be stored compressed beside its name: where raw/X.jsonl is absent, raw/X.jsonl.gz (the
slimmed reference runs, see slim.py) or raw/X.jsonl.xz (a long campaign's history, kept smaller) is
read in its place. Callers name the plain file and ask
`run_file_exists`, never Path.is_file; the load harness always writes plain files.
"""

from __future__ import annotations

import gzip
import json
import lzma
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

DAMAGED = "the run's raw data is damaged"
GZIP_SUFFIX = ".gz"
XZ_SUFFIX = ".xz"
LOCUST_HTML = "locust.html"  # Locust's own report, beside report.md
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error, lzma.LZMAError)  # not gzip/xz, truncated, corrupt


class RunFileError(ValueError):
    """A run file cannot be read; the message names the file and the fix."""


def gzipped(path: Path) -> Path:
    """Where path's gzip-compressed copy is stored: path + .gz."""
    return path.with_name(path.name + GZIP_SUFFIX)


def stored_path(path: Path) -> Path:
    """The file that holds path's contents: path itself, or its .gz (else .xz) copy when only that exists."""
    path = Path(path)
    if not path.is_file():
        for copy in (gzipped(path), path.with_name(path.name + XZ_SUFFIX)):
            if copy.is_file():
                return copy
    return path


def run_file_exists(path: Path) -> bool:
    """Whether path exists, plain or compressed (.gz, .xz)."""
    return stored_path(path).is_file()


def open_run_file(path: Path) -> IO[str]:
    """path opened as UTF-8 text, decompressed when only its .gz or .xz copy exists."""
    stored = stored_path(path)
    if stored.suffix == XZ_SUFFIX and stored != Path(path):
        return lzma.open(stored, "rt", encoding="utf-8")
    if stored != Path(path):
        return gzip.open(stored, "rt", encoding="utf-8")
    return stored.open(encoding="utf-8")


def require_file(path: Path) -> Path:
    if not run_file_exists(path):
        raise RunFileError(
            f"{path} is missing; the load harness writes it during every run, "
            "so this is not a complete run folder (pass one such as results/latest, or re-run the load test)"
        )
    return path


def read_json(path: Path) -> Any:
    """The JSON document in path (or its compressed copy), which must exist."""
    if not run_file_exists(path):
        raise RunFileError(f"{path} is missing; pass a folder written by a load run (e.g. results/latest)")
    try:
        with open_run_file(path) as text:
            return json.load(text)
    except (json.JSONDecodeError, UnicodeDecodeError, *_GZIP_ERRORS) as error:
        raise RunFileError(
            f"{stored_path(path)} is not valid JSON ({error}); restore it from the run or re-run the load test"
        ) from error


def read_json_object(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """The JSON object in path; {} when it is absent and missing_ok (a plain load run has no experiment files)."""
    if missing_ok and not run_file_exists(path):
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise RunFileError(f"{path} must hold a JSON object; {DAMAGED}")
    return data


def iter_jsonl(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) for each non-blank line of path (or its compressed copy), checking the required
    keys are there."""
    where = stored_path(require_file(path))
    with open_run_file(path) as lines:
        line_no = 0
        try:
            for line_no, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise RunFileError(f"{where}:{line_no} is not valid JSON ({error}); {DAMAGED}") from error
                missing = [key for key in required if not isinstance(record, dict) or key not in record]
                if missing:
                    raise RunFileError(f"{where}:{line_no} lacks {', '.join(missing)}; {DAMAGED}")
                yield line_no, record
        except (UnicodeDecodeError, *_GZIP_ERRORS) as error:
            raise RunFileError(f"{where}: unreadable after line {line_no} ({error}); {DAMAGED}") from error


def read_jsonl(path: Path, required: tuple[str, ...] = ("t",), *, missing_ok: bool = True) -> list[dict[str, Any]]:
    """Every record of a JSON-lines file; [] when it is absent and missing_ok."""
    if missing_ok and not run_file_exists(path):
        return []
    return [record for _, record in iter_jsonl(path, required)]


def number_field(record: dict[str, Any], key: str, where: str) -> float:
    """record[key], which must be a number (a bool is not one)."""
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RunFileError(f"{where}: {key} must be a number, not {value!r}; {DAMAGED}")
    return value
