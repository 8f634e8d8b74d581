"""The one reader of a run folder's files: meta.json, summary.json and everything in raw/.

Every damaged or missing file raises RunFileError, whose message names the file (and the
line, for JSON lines) and the fix. Callers that must go on past a damaged run (the matrix)
catch it; the others let it reach their CLI, which prints it and exits 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DAMAGED = "the run's raw data is damaged"


class RunFileError(ValueError):
    """A run file cannot be read; the message names the file and the fix."""


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise RunFileError(
            f"{path} is missing; the load harness writes it during every run, "
            "so this is not a complete run folder (pass one such as results/latest, or re-run the load test)"
        )
    return path


def read_json(path: Path) -> Any:
    """The JSON document in path, which must exist."""
    if not path.is_file():
        raise RunFileError(f"{path} is missing; pass a folder written by a load run (e.g. results/latest)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunFileError(
            f"{path} is not valid JSON ({error}); restore it from the run or re-run the load test"
        ) from error


def read_json_object(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """The JSON object in path; {} when it is absent and missing_ok (a plain load run has no experiment files)."""
    if missing_ok and not path.is_file():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise RunFileError(f"{path} must hold a JSON object; {DAMAGED}")
    return data


def iter_jsonl(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) for each non-blank line, checking the required keys are there."""
    with require_file(path).open(encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise RunFileError(f"{path}:{line_no} is not valid JSON ({error}); {DAMAGED}") from error
            missing = [key for key in required if not isinstance(record, dict) or key not in record]
            if missing:
                raise RunFileError(f"{path}:{line_no} lacks {', '.join(missing)}; {DAMAGED}")
            yield line_no, record


def read_jsonl(path: Path, required: tuple[str, ...] = ("t",), *, missing_ok: bool = True) -> list[dict[str, Any]]:
    """Every record of a JSON-lines file; [] when it is absent and missing_ok."""
    if missing_ok and not path.is_file():
        return []
    return [record for _, record in iter_jsonl(path, required)]


def number_field(record: dict[str, Any], key: str, where: str) -> float:
    """record[key], which must be a number (a bool is not one)."""
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RunFileError(f"{where}: {key} must be a number, not {value!r}; {DAMAGED}")
    return value
