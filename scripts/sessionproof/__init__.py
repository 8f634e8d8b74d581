"""sessionproof's operator side: runtimes, stack control, load runs, chaos and reports."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = REPO_ROOT / "services"
