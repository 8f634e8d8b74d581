"""Render the configs in services/ for one runtime's values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from sessionproof import SERVICES_DIR

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render_text(template: str, values: Mapping[str, object]) -> str:
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise KeyError(f"template needs values for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def render_template(relative_path: str, values: Mapping[str, object]) -> str:
    return render_text((SERVICES_DIR / relative_path).read_text(), values)


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    path.chmod(mode)
    return True
