"""`python -m sessionproof.runtimes.stack COMMAND`: the Makefile's up/down/status/logs, usable directly."""

from __future__ import annotations

import argparse
import subprocess
import sys

from sessionproof import settings
from sessionproof.runtimes import request_logs
from sessionproof.runtimes.commands import ContainerError
from sessionproof.runtimes.factory import get_runtime, running_store
from sessionproof.runtimes.interface import StackError
from sessionproof.runtimes.local import LocalRuntime, default_runtime
from sessionproof.waiting import DeadlineExceeded


def print_status(runtime: LocalRuntime) -> bool:
    rows = runtime.status()
    header = ("node", "role", "state", "pid", "address", "detail")
    table = [header] + [
        (r.node.name, r.role, r.state, str(r.pid or "-"), _address(runtime, r.node), r.detail) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    masters = sum(r.role == "master" for r in rows)
    replicas = sum(r.role == "replica" and r.state == "RUNNING" for r in rows)
    running = sum(r.state == "RUNNING" for r in rows)
    print(f"\n{running}/{len(rows)} nodes running; Sentinel sees {masters} master, {replicas} replicas running")
    print(f"store: {running_store(runtime.config.env)} (STORE_ENGINE {runtime.config.store_engine})")
    if runtime.network is not None:
        print(
            f"network: netns on {runtime.config.subnet}, bridge {runtime.network.bridge}; entry {runtime.config.entry_url}"
        )
        for node_name, rules in runtime.network_faults().items():
            print(f"  fault on {node_name}: " + "; ".join(rules))
    return running == len(rows)


def _address(runtime: LocalRuntime, node) -> str:
    if node.kind == "nginx" and runtime.network is not None:
        # Clients enter on BIND_HOST; the apps see nginx at the bridge's address.
        return f"{runtime.config.bind_host}:{node.port} (to apps from {node.host})"
    return node.address


def cmd_up(runtime: LocalRuntime, args) -> int:
    runtime.up()
    print()
    if isinstance(runtime, LocalRuntime):
        print_status(runtime)
    print(f"\nstack is up: {runtime.config.entry_url}")
    print(f"try: curl -c jar -b jar -X POST {runtime.config.entry_url}/cart/apple")
    return 0


def cmd_down(runtime: LocalRuntime, args) -> int:
    runtime.down()
    return 0


def cmd_status(runtime: LocalRuntime, args) -> int:
    if not runtime.supervisor.running():
        print(f"the stack is not running (state in {runtime.state_dir}); start it with `make up`")
        return 3
    return 0 if print_status(runtime) else 1


def cmd_logs(runtime: LocalRuntime, args) -> int:
    if args.request_id:
        apps = [n.name for n in runtime.config.app_nodes]
        found = request_logs.find_request(runtime.state_dir / "logs", apps, args.request_id)
        print(request_logs.format_request(found, args.request_id))
        return 0 if found else 1
    names = (
        [args.node]
        if args.node
        else [n.name for n in runtime.config.all_nodes] + ["nginx-access", "nginx-error", "supervisord"]
    )
    paths = [runtime.supervisor.log_path(name) for name in names if runtime.supervisor.log_path(name).exists()]
    if not paths:
        print(f"no logs yet under {runtime.state_dir / 'logs'}")
        return 0
    command = ["tail", "-n", str(args.lines)] + (["-F"] if args.follow else []) + [str(p) for p in paths]
    return subprocess.call(command)


def cmd_clean(runtime: LocalRuntime, args) -> int:
    runtime.clean()
    return 0


def cmd_config(runtime: LocalRuntime | None, args) -> int:
    print(settings.markdown_table())
    return 0


def cmd_node(runtime: LocalRuntime, args) -> int:
    action = getattr(runtime, args.command)
    result = action(args.node)
    print(f"{args.command} {args.node}" + (f" (pid {result})" if isinstance(result, int) else ""))
    return 0


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "logs": cmd_logs,
    "clean": cmd_clean,
    "config": cmd_config,
    "kill": cmd_node,
    "pause": cmd_node,
    "resume": cmd_node,
    "start": cmd_node,
}


NODE_COMMANDS = ("kill", "pause", "resume", "start")


def _container_only(runtime, args) -> int:
    """status on compose and k8s; logs and clean belong to their own tools there."""
    if args.command == "status":
        master = runtime.master_node()
        roles = runtime.redis_roles()  # each Redis node's own view: master, replica or down
        for node in runtime.nodes():
            role = "master" if master and node.name == master.name else roles.get(node.name, node.kind)
            print(f"{node.name:<20} {role:<10} {'running' if runtime.is_running(node.name) else 'DOWN'}")
        return 0 if runtime.healthy() else 3
    if runtime.name == "compose":
        tool = f"{runtime.engine} {args.command} CONTAINER (`{runtime.engine} ps` names them)"
    else:
        tool = f"kubectl {args.command}"
    print(f"`make {args.command}` is for the local runtime; on STACK={runtime.name} use {tool}")
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.runtimes.stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status", "clean", "config"):
        sub.add_parser(name)
    logs = sub.add_parser("logs")
    logs.add_argument("node", nargs="?")
    logs.add_argument("-n", "--lines", type=int, default=20)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--request-id", help="print every log line (nginx's and each app's) of this one request")
    for name in NODE_COMMANDS:
        sub.add_parser(name).add_argument("node")
    args = parser.parse_args(argv)
    try:
        if args.command == "config":
            return cmd_config(None, args)
        runtime = get_runtime()
        if not isinstance(runtime, LocalRuntime) and args.command not in ("up", "down", *NODE_COMMANDS):
            return _container_only(runtime, args)
        return COMMANDS[args.command](runtime if not isinstance(runtime, LocalRuntime) else default_runtime(), args)
    except (StackError, settings.ConfigError, DeadlineExceeded, KeyError, ContainerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
