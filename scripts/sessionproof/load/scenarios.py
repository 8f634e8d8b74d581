"""Scenarios are data: loadtests/scenarios/<name>.yaml (users, rate, duration, mix, SLOs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sessionproof import REPO_ROOT, settings
from sessionproof.load.pacing import check_catch_up_factor

USER_KINDS = ("latency", "bounce", "concurrency")


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    users: int
    spawn_rate: float
    duration: str
    rate_per_user_per_s: float
    mix: dict[str, float]
    latency_mix: dict[str, float] = field(default_factory=dict)
    concurrent_requests: int = 5
    catch_up_factor: float | None = None  # Pacer's: a backlog goes out at most at this multiple of the rate
    slo: list[dict] = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def duration_s(self) -> float:
        return duration_s(self.duration)


def duration_s(text: str) -> float:
    """Seconds of a Locust time span such as "40s", "2m" or "1m30s" (a bare number is seconds)."""
    # Not locust.util.timespan: importing locust monkey-patches this process (threads, sockets) with gevent.
    units = {"s": 1, "m": 60, "h": 3600}
    total, number = 0.0, ""
    for char in text.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
    return total + (float(number) if number else 0.0)


def scenario_dir() -> Path:
    path = Path(settings.get_str("SCENARIO_DIR"))
    return path if path.is_absolute() else REPO_ROOT / path


def available(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or scenario_dir()).glob("*.yaml"))


def load(name: str, directory: Path | None = None) -> Scenario:
    directory = directory or scenario_dir()
    path = directory / f"{name}.yaml"
    if not path.exists():
        raise ScenarioError(f"no scenario {name!r} in {directory}; choose one of: {', '.join(available(directory))}")
    data = yaml.safe_load(path.read_text()) or {}
    try:
        mix = {str(k): float(v) for k, v in data["mix"].items()}
        scenario = Scenario(
            name=name,
            description=str(data.get("description", "")).strip(),
            users=int(data["users"]),
            spawn_rate=float(data["spawn_rate"]),
            duration=str(data["duration"]),
            rate_per_user_per_s=float(data["rate_per_user_per_s"]),
            mix=mix,
            latency_mix={str(k): float(v) for k, v in (data.get("latency_mix") or {}).items()},
            concurrent_requests=int(data.get("concurrent_requests", 5)),
            catch_up_factor=float(data["catch_up_factor"]) if data.get("catch_up_factor") is not None else None,
            slo=list(data.get("slo") or []),
            raw=data,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ScenarioError(f"{path}: {error!r}; see loadtests/scenarios/README.md for the fields") from None
    unknown = set(scenario.mix) - set(USER_KINDS)
    if unknown or not any(v > 0 for v in mix.values()):
        raise ScenarioError(f"{path}: mix needs weights for {', '.join(USER_KINDS)}; unknown: {sorted(unknown)}")
    for check in scenario.slo:
        if not isinstance(check, dict) or "path" not in check or not ({"max", "min"} & set(check)):
            raise ScenarioError(f"{path}: each slo entry needs a path and a max or min, got {check!r}")
    if scenario.users < 1 or scenario.rate_per_user_per_s <= 0 or scenario.concurrent_requests < 1:
        raise ScenarioError(f"{path}: users, rate_per_user_per_s and concurrent_requests must be positive")
    try:
        check_catch_up_factor(scenario.catch_up_factor)
    except ValueError as error:
        raise ScenarioError(f"{path}: {error}") from None
    return scenario
