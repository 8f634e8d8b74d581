"""What a load run tells about itself: meta.json and the heartbeat line during load (its summary at the end is
the report's, load/finish.py)."""

from __future__ import annotations

from sessionproof import runs, settings
from sessionproof.runtimes.factory import run_versions
from sessionproof.topology import Node, StackConfig
from sessionproof.validity import MAX_LOOP_LAG_P99_US, MAX_TRUSTED_CPU_PERCENT

RUN_DIR_ENV = "SESSIONPROOF_RUN_DIR"  # an experiment reserves the folder itself and hands it over
# Set by an experiment: it adds the final read and writes the report itself, so the run must not judge.
REPORT_LATER_ENV = "SESSIONPROOF_REPORT_LATER"
HEARTBEAT_PREFIX = "sessionproof: load "  # an experiment relays these lines to the terminal


def heartbeat_line(
    elapsed_s: float,
    duration_s: float | None,
    stats_total,
    users: int,
    generator: dict | None = None,
) -> str:
    """One progress line: time, users, requests, failures and the p99 of the last seconds; then the load
    generator against its validity bounds (generator: loop_lag_window_us, loop_lag_us, cpu_max_percent),
    saying when it crosses one, while the run goes on."""
    of = f"/{duration_s:.0f}s" if duration_s else "s"
    p99_ms = stats_total.get_current_response_time_percentile(0.99)
    line = (
        f"{HEARTBEAT_PREFIX}{elapsed_s:4.0f}{of} {users} users, {stats_total.num_requests} requests "
        f"({stats_total.current_rps:.0f}/s), {stats_total.num_failures} failed, "
        f"p99 {'n/a' if p99_ms is None else f'{p99_ms:.0f} ms'} (Locust's clock, last 10 s)"
    )
    return line + (generator_text(**generator) if generator else "")


def generator_text(loop_lag_window_us: dict, loop_lag_us: dict, cpu_max_percent: float) -> str:
    """The heartbeat's part on the generator: its loop lag since the last line and its CPU peak, and a warning
    when the lag crosses the bound that makes the run INVALID (validity.MAX_LOOP_LAG_P99_US, of the whole run)."""
    bound_us, cpu_bound = MAX_LOOP_LAG_P99_US, MAX_TRUSTED_CPU_PERCENT
    window_p99, run_p99 = loop_lag_window_us.get("p99"), loop_lag_us.get("p99")
    text = f"; generator loop lag p99 {_ms(window_p99)} ms, CPU peak {cpu_max_percent:.0f}%"
    warnings = []
    if window_p99 is not None and window_p99 > bound_us:
        warnings.append(f"loop lag over the {bound_us / 1000:g} ms bound in the last seconds")
    if run_p99 is not None and run_p99 > bound_us:
        warnings.append(f"run INVALID so far (loop lag p99 {_ms(run_p99)} ms over the run)")
    if cpu_max_percent > cpu_bound:
        warnings.append(f"run INVALID: CPU peaked over {cpu_bound:.0f}%")
    return text + ("; WARNING: " + "; ".join(warnings) if warnings else "")


def _ms(value_us: int | None) -> str:
    return "n/a" if value_us is None else f"{value_us / 1000:.1f}"


def _nodes(stack: str, config: StackConfig) -> list[Node]:
    """As the nodes name each other: local addresses, or the service names and ports inside the compose network."""
    if stack != "compose":
        return config.nodes
    from sessionproof.runtimes.compose import service_nodes

    return service_nodes(config)


def meta(environment, run, web_ui: bool) -> dict:
    """meta.json of a run: what ran, where, with which settings and versions."""
    options = environment.parsed_options
    stack = settings.get_str("STACK")
    try:
        config = StackConfig.from_env()
        # Each node's host and port: the report maps a response's X-Store-Node ("host:port") to a node name.
        topology = {
            "runtime": stack,
            "network": config.network if stack == "local" else None,
            "apps": config.apps,
            "nodes": [{"name": n.name, "kind": n.kind, "host": n.host, "port": n.port} for n in _nodes(stack, config)],
        }
    except ValueError as error:
        topology = {"error": str(error)}
    return {
        "scenario": run.scenario.name,
        "started_at": run.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        # To the µs: the origin of the history's times (started_at keeps whole seconds).
        "started_unix_s": round(run.started.timestamp(), 6),
        "ended_at": run.stopped.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round((run.stopped - run.started).total_seconds(), 3),
        "stack": stack,
        "host_url": environment.host,
        "command": runs.command_line() + (" (a test started in the web UI)" if web_ui else ""),
        "locust": {
            "users": run.scenario.users if web_ui else getattr(options, "num_users", None),
            "spawn_rate": run.scenario.spawn_rate if web_ui else getattr(options, "spawn_rate", None),
            "run_time": run.scenario.duration if web_ui else getattr(options, "run_time", None),
            "processes": getattr(options, "processes", None),
            "mode": type(environment.runner).__name__,
            "web_ui": web_ui,
        },
        "scenario_config": run.scenario.raw,
        "git_sha": run.git_sha,
        "versions": run_versions(),
        "config": runs.resolved_config(),
        "topology": topology,
        "host": runs.host_facts(),
    }
