"""One request across the stack's logs: nginx's JSON access log line and every app replica's, joined by request id.

nginx makes the id ($request_id), logs it, and sends it on as X-Request-ID; each replica logs
it with its own line (REQUEST_LOG=json). A request nginx re-sent to another replica has one
app line per replica it reached, and nginx's line lists them all in upstream_addr.
"""

from __future__ import annotations

import json
from pathlib import Path

NGINX_ACCESS_LOG = "nginx-access.log"


def _log_files(log_dir: Path, app_names: list[str]) -> list[tuple[str, Path]]:
    files = []
    for name, base in [("nginx", NGINX_ACCESS_LOG), *((app, f"{app}.log") for app in app_names)]:
        # supervisord's rotated backups (app-1.log.2, .1) first: oldest lines first.
        for path in [*sorted(log_dir.glob(f"{base}.*"), reverse=True), log_dir / base]:
            if path.exists():
                files.append((name, path))
    return files


def find_request(log_dir: Path, app_names: list[str], request_id: str) -> list[tuple[str, dict]]:
    """(node, its JSON log line) for every line about request_id: nginx's first, then each replica's in order."""
    found = []
    for node, path in _log_files(log_dir, app_names):
        with path.open(errors="replace") as lines:
            for line in lines:
                if request_id not in line or not line.startswith("{"):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("request_id") == request_id:
                    found.append((entry.get("replica", node), entry))
    return found


def format_request(found: list[tuple[str, dict]], request_id: str) -> str:
    if not found:
        return (
            f"no log line has request id {request_id!r} (nginx writes its access log within a second; "
            "the id is the X-Request-ID nginx sends on, also in each app line)"
        )
    width = max(len(node) for node, _ in found)
    return "\n".join(f"{node.ljust(width)}  {json.dumps(entry, separators=(',', ':'))}" for node, entry in found)
