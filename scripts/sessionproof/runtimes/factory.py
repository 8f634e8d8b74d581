"""The one place a runtime is made: STACK picks local processes, compose or k8s.

Only callers above the runtimes import this module; no runtime imports it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from sessionproof import engines, runs, settings
from sessionproof.runtimes.commands import Runner, run_command
from sessionproof.runtimes.compose import ComposeRuntime
from sessionproof.runtimes.interface import Runtime
from sessionproof.runtimes.k8s import K8sRuntime
from sessionproof.runtimes.local import LocalRuntime
from sessionproof.topology import StackConfig

STACKS = ("local", "compose", "k8s")


def make_runtime(stack: str, env: Mapping[str, str] | None, runner: Runner = run_command) -> Runtime:
    """The runtime of one stack; the container runtimes send their commands through `runner`."""
    config = StackConfig.from_env(env)
    if stack == "local":
        return LocalRuntime(config)
    if stack == "compose":
        return ComposeRuntime(config, runner)
    return K8sRuntime(config, runner)


def running_store(env=None) -> str:
    """The engine and version the running stack's data nodes report (INFO server), e.g. "valkey 9.1.2": what ran,
    whatever STORE_ENGINE or the PATH say now."""
    try:
        runtime = get_runtime(env)
        names = [node.name for node in runtime.nodes("redis")]
    except Exception as error:  # no stack configured: say so in meta.json, do not fail the run
        return f"unknown ({error})"
    for name in names:
        try:
            return engines.running_engine(runtime.redis_info(name, "server"))
        except Exception:  # that node is down (a fault): ask the next
            continue
    return "unknown (no data node answered)"


def run_versions(env=None) -> dict[str, str]:
    """A run's versions (runs.versions) and the store the running stack's nodes report (running_store)."""
    return {**runs.versions(), "store": running_store(env)}


def get_runtime(env: Mapping[str, str] | None = None) -> Runtime:
    """The runtime the STACK setting names."""
    return make_runtime(settings.get_choice("STACK", STACKS, env), env)


def runtimes_in_turn(
    base: Runtime,
    planned: list[tuple[str, str]],
    progress: Callable[[str], None],
    make: Callable[[Mapping[str, str]], Runtime] | None = None,
) -> Iterator[tuple[str, dict[str, str], Runtime]]:
    """For each (engine, configuration) of `planned` (topology.planned_runs), in turn: its label (`hardened on
    valkey`), its settings on top of base's, and its runtime, not yet up. Between engines the stack is stopped:
    one engine at a time on the stack's ports (each keeps its own data). `make` makes a runtime (get_runtime)."""
    make = make or get_runtime
    running = base
    for engine, configuration in planned:
        overrides = {**settings.CONFIGURATIONS[configuration], "STORE_ENGINE": engine}
        runtime = make({**base.config.env, **overrides})
        if running.config.store_engine != engine:
            progress(f"== stopping the {running.config.store_engine} stack for {engine}")
            running.down(progress=lambda *_: None)
        running = runtime
        yield settings.configuration_label(configuration, engine), overrides, runtime
