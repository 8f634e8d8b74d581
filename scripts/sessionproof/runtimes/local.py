"""The local runtime: every node a real process under supervisord, on loopback or, with
NETWORK=netns, each Redis, Sentinel and app node in a network namespace of its own (netns.py).

LocalRuntime drives the stack's life (up, down, clean) and its faults; its jobs live beside it:
local_files.py writes the configs, supervisor.py runs the processes, readiness.py asks
the nodes whether they serve, netns.py makes and breaks the network.

Layout of STATE_DIR (git-ignored):
  supervisord.conf, supervisor.sock, stack.json (resolved ports)
  redis-N/{redis.conf, appendonlydir/}   sentinel-N/sentinel.conf
  nginx/nginx.conf (+ temp dirs)          logs/<node>.log   run/*.pid
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import xmlrpc.client
from pathlib import Path

import psutil

from sessionproof import settings
from sessionproof.runtimes import probes
from sessionproof.runtimes.disk import writable_again
from sessionproof.runtimes.interface import StackError
from sessionproof.runtimes.local_files import LocalFiles
from sessionproof.runtimes.netns import NetworkError, NodeNetwork
from sessionproof.runtimes.readiness import NodeStatus, StackProbe
from sessionproof.runtimes.supervisor import UP_STATES, Supervisor, is_stopped, process_tree
from sessionproof.topology import Node, StackConfig
from sessionproof.waiting import wait_until

AOF_DIR_NAME = "appendonlydir"  # Redis's appenddirname, which redis.conf does not change


class LocalRuntime:
    name = "local"

    def __init__(self, config: StackConfig):
        self.config = config
        self.state_dir = config.state_dir
        self.password = config.get("REDIS_PASSWORD")
        self.master_name = config.get("REDIS_MASTER_NAME")
        self.network = NodeNetwork(config) if config.netns else None
        self.supervisor = Supervisor(self.state_dir)
        self.files = LocalFiles(config, self.supervisor, self.network)
        self.probe = StackProbe(config)

    def render(self) -> bool:
        """Write every config; True when nginx's changed."""
        return self.files.render()

    # ------------------------------------------------------------- lifecycle
    def up(self, timeout_s: float | None = None, progress=print) -> None:
        timeout_s = timeout_s or settings.get_int("STACK_UP_TIMEOUT_S", self.config.env, minimum=1)
        nginx_changed = self.render()
        for node in self.config.redis_nodes:  # an AOF a disk fault left unwritable would hold writes (MISCONF)
            writable_again(self.aof_dir(node.name))
        if self.network is not None:
            progress(f"network: a namespace per node on {self.config.subnet} (bridge {self.network.bridge})")
            self._network_call(self.network.create)
        if self.supervisor.running():
            progress(f"supervisord already running (pid {self.supervisor.pid()}); bringing every node up")
            self.supervisor.apply_changes()
        else:
            progress("starting supervisord")
            self.supervisor.start()
        info = self.supervisor.process_info()
        for group, check, what in (
            # Only that each node answers: which one is master is the Sentinels' to settle. A stack stopped in
            # the middle of faults can restart with several nodes that were master once (each config says so),
            # and only Sentinel, which knows the newest configuration, turns them back into replicas.
            (self.config.redis_nodes, self.probe.redis_answering, "every Redis node answers"),
            (
                self.config.sentinel_nodes,
                self.probe.sentinels_ready,
                "Sentinels agree on the master and see every node",
            ),
            (self.config.app_nodes, self.probe.apps_ready, "every app replica is ready (/readyz)"),
            ([self.config.nginx_node], self.probe.nginx_ready, "nginx serves /ping"),
            (
                self.config.observability_nodes,
                self.probe.observability_ready,
                f"Prometheus ({self.config.prometheus_url}) scrapes every app, Redis node and nginx",
            ),
        ):
            if not group:
                continue
            names = [n.name for n in group]
            progress(f"starting {', '.join(names)}")
            for name in names:
                if info.get(name, {}).get("statename") != "RUNNING":
                    self.supervisor.start_program(name)
                else:
                    self.resume(name)  # a node left paused by a fault would never answer
            wait_until(check, timeout_s, what, interval_s=0.2, hint=f"logs: {self.state_dir / 'logs'}")
            progress(f"  ok: {what}")
            if group[0].kind == "redis":
                self._apply_redis_settings()
        if nginx_changed:
            # Only then: a reload closes idle client connections, which a client can see as an error.
            self._reload_nginx()
        names = [n.name for n in self.config.all_nodes]
        wait_until(
            lambda: all(self.supervisor.process_info()[n]["statename"] == "RUNNING" for n in names),
            timeout_s,
            "supervisor to report every node RUNNING",
        )
        # Each group was ready when checked, but a failover still in flight (a master that was
        # paused for a while) can change the topology after its check: wait until it has settled.
        wait_until(
            self.probe.topology_settled,
            timeout_s,
            "one Redis master, the one every Sentinel names, with its replicas in sync",
            interval_s=0.2,
            hint=f"logs: {self.state_dir / 'logs'}; `make status` shows each node's role. To start again from empty"
            " data: `make down && make clean && make up`",
        )

    def _apply_redis_settings(self) -> None:
        """REDIS_MIN_REPLICAS_*, REDIS_MAXMEMORY and REDIS_APPENDFSYNC on every running node (and into its config
        file): they can change without `make clean`, e.g. between the configurations of `make experiments`, for
        `make scale`, or for the durability comparison of `make bench`."""
        wanted = {
            "min-replicas-to-write": settings.get_int("REDIS_MIN_REPLICAS_TO_WRITE", self.config.env, minimum=0),
            "min-replicas-max-lag": settings.get_int("REDIS_MIN_REPLICAS_MAX_LAG_S", self.config.env, minimum=1),
            "maxmemory": settings.get_str("REDIS_MAXMEMORY", self.config.env),
            "appendfsync": settings.redis_appendfsync(self.config.env),
        }
        for node in self.config.redis_nodes:
            with probes.redis_client(node.host, node.port, self.password) as client:
                before = client.config_get(*wanted)
                for name, value in wanted.items():
                    client.config_set(name, value)
                if client.config_get(*wanted) != before:
                    client.config_rewrite()

    def redis_info(self, node_name: str, section: str) -> dict[str, str]:
        node = self.config.node(node_name)
        with probes.redis_client(node.host, node.port, self.password) as client:
            return {key: str(value) for key, value in client.info(section).items()}

    def redis_command(self, node_name: str, *args: str, timeout_s: float | None = probes.PROBE_TIMEOUT_S):
        node = self.config.node(node_name)
        return probes.redis_command(node.host, node.port, self.password, args, timeout_s)

    def redis_config_set(self, node_name: str, parameter: str, value: str) -> None:
        node = self.config.node(node_name)
        with probes.redis_client(node.host, node.port, self.password) as client:
            client.config_set(parameter, value)

    def aof_dir(self, node_name: str) -> Path:
        """<data dir>/redis-N/appendonlydir: redis.conf's dir is the node's folder, appenddirname Redis's default."""
        return self.config.data_dir / self.config.node(node_name).name / AOF_DIR_NAME

    def _network_call(self, action, *args):
        try:
            return action(*args)
        except NetworkError as error:
            raise StackError(str(error)) from None

    def _reload_nginx(self) -> None:
        # A re-run with another APPS rewrites the upstream list; HUP makes nginx read it.
        info = self.supervisor.process_info().get("nginx")
        if info and info["statename"] == "RUNNING":
            os.kill(info["pid"], signal.SIGHUP)

    def down(self, progress=print) -> None:
        self._stop_processes(progress)
        self._remove_network(progress)

    def _stop_orphaned_nginx(self, progress) -> None:
        """nginx outlives a crashed supervisord (the nodes in namespaces go with them); stop it by its pid file."""
        try:
            proc = psutil.Process(int((self.state_dir / "run" / "nginx.pid").read_text().strip()))
            ours = str(self.state_dir) in " ".join(proc.cmdline())
        except (OSError, ValueError, psutil.Error):
            return
        if ours:
            progress(f"stopping nginx (pid {proc.pid}) and its workers, left by a crashed supervisord")
            tree = process_tree(proc.pid)  # the workers would outlive their master
            for member in tree:
                member.kill()
            psutil.wait_procs(tree, timeout=5)

    def _stop_orphaned_observability(self, progress) -> None:
        """Prometheus and the exporters (host namespace, like nginx) outlive a crashed supervisord too: ours are
        those of these programs started in or naming this state folder."""
        programs = {"prometheus", "prometheus-redis-exporter", "prometheus-nginx-exporter"}
        state = str(self.state_dir)
        orphans = []
        for proc in psutil.process_iter(["exe", "cwd", "cmdline"]):
            exe, cwd = proc.info["exe"] or "", proc.info["cwd"] or ""
            if os.path.basename(exe) in programs and (
                cwd.startswith(state) or state in " ".join(proc.info["cmdline"] or [])
            ):
                orphans.append(proc)
        for proc in orphans:
            progress(f"stopping {os.path.basename(proc.info['exe'])} (pid {proc.pid}), left by a crashed supervisord")
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(orphans, timeout=5)

    def _remove_network(self, progress) -> None:
        """Every namespace, veth and bridge of this stack, also those a crashed or loopback re-run left."""
        network = self.network or NodeNetwork(self.config)
        try:
            left = network.leftovers()
        except (NetworkError, OSError):
            return  # no iproute2: nothing can have been made
        if not (left["namespaces"] or left["links"]):
            return
        if os.geteuid() != 0:
            raise StackError(
                f"namespaces {left['namespaces']} and links {left['links']} remain; removing them needs root"
            )
        self._network_call(network.destroy, progress)
        progress(f"removed {len(left['namespaces'])} namespaces and {len(left['links'])} links")

    def _stop_processes(self, progress) -> None:
        pid = self.supervisor.pid()
        if pid is None:
            self._stop_orphaned_nginx(progress)
            self._stop_orphaned_observability(progress)
            progress("nothing is running")
            return
        tree = process_tree(pid)
        try:
            for node in reversed(self.config.all_nodes):  # observability and entry first, data last
                self.resume(node.name)
            progress("stopping every node")
            self.supervisor.shutdown()
        except (OSError, xmlrpc.client.Fault) as error:
            progress(f"supervisord did not answer ({error}); stopping its processes by pid")
        _gone, alive = psutil.wait_procs([psutil.Process(pid)], timeout=20) if psutil.pid_exists(pid) else ([], [])
        leftovers = [p for p in tree if p.is_running()]
        for proc in leftovers + alive:
            progress(f"killing leftover pid {proc.pid} ({' '.join(proc.cmdline()[:2])})")
            proc.kill()
        psutil.wait_procs(leftovers + alive, timeout=5)
        self._stop_orphaned_nginx(progress)
        self._stop_orphaned_observability(progress)
        progress("stopped")

    # --------------------------------------------------------------- faults
    def pid(self, node_name: str) -> int | None:
        return self.supervisor.program_pid(node_name)

    def kill(self, node_name: str) -> int:
        """SIGKILL a node and everything it forked, the way a machine dies."""
        pid = self.pid(node_name)
        if pid is None:
            raise StackError(f"{node_name} is not running")
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        for proc in procs:
            proc.send_signal(signal.SIGCONT)  # a paused process must not linger
            proc.kill()
        # The node's own process is supervisord's child, reaped at once. Its children (a Redis node's catch-up
        # watcher, gunicorn's workers) are orphans now, reaped whenever init gets to it: they are dead already
        # (SIGKILL), and waiting for their reaping delayed the fault_injected event by up to 1.8 s.
        psutil.wait_procs(procs[:1], timeout=5)
        return pid

    def pause(self, node_name: str) -> None:
        self._signal_tree(node_name, signal.SIGSTOP)

    def resume(self, node_name: str) -> None:
        with contextlib.suppress(StackError, psutil.NoSuchProcess):
            self._signal_tree(node_name, signal.SIGCONT)

    def start(self, node_name: str) -> None:
        """Start a stopped or killed node (no-op when it runs); resume it if it was paused."""
        info = self.supervisor.process_info().get(node_name)
        if info is None:
            raise KeyError(f"no node named {node_name!r}")
        if info["statename"] in UP_STATES:
            self.resume(node_name)
        else:
            self.supervisor.start_program(node_name)

    def stop(self, node_name: str) -> None:
        """Graceful stop (SIGTERM, as a deployment would)."""
        self.resume(node_name)
        self.supervisor.stop_program(node_name)

    def is_running(self, node_name: str) -> bool:
        info = self.supervisor.process_info().get(node_name)
        return bool(info) and info["statename"] in UP_STATES and not is_stopped(info["pid"])

    def wait_node_ready(self, node_name: str, timeout_s: float = 30) -> None:
        wait_until(self.probe.node_ready(self.config.node(node_name)), timeout_s, f"{node_name} to be ready")

    def restart(self, node_name: str, timeout_s: float = 30) -> None:
        """Graceful stop, start, and wait until the node is ready again."""
        self.stop(node_name)
        self.supervisor.start_program(node_name)
        self.wait_node_ready(node_name, timeout_s)

    def nodes(self, kind: str | None = None) -> list[Node]:
        return [n for n in self.config.nodes if kind is None or n.kind == kind]

    # ------------------------------------------------------- network faults
    def network_refusal(self) -> str | None:
        """Why this stack cannot take network faults, or None when it can."""
        if self.network is not None:
            return None
        root = os.geteuid() == 0
        how = "`make down && make clean && NETWORK=netns make up`" if root else "run as root with NETWORK=netns"
        return (
            f"this stack runs NETWORK={self.config.network} (every node on {self.config.bind_host}); network faults "
            f"need NETWORK=netns, each node its own address in a network namespace, which needs root: {how}"
        )

    def _require_network(self) -> NodeNetwork:
        refusal = self.network_refusal()
        if refusal is not None:
            raise StackError(refusal)
        return self.network

    def cut_links(self, pairs: list[tuple[str, str]]) -> None:
        """Cut each (node, node) link both ways; every other link keeps working."""
        network = self._require_network()
        for a, b in pairs:
            self._network_call(network.cut, self.config.node(a), self.config.node(b))

    def congest(self, node_name: str, rate_kbit: int, burst_kbit: int, latency_ms: int) -> None:
        self._network_call(
            self._require_network().congest, self.config.node(node_name), rate_kbit, burst_kbit, latency_ms
        )

    def heal_network(self) -> None:
        if self.network is not None:
            self._network_call(self.network.heal)

    def network_faults(self) -> dict[str, list[str]]:
        """The cuts and rate limits in place, per node ({} on a healthy or loopback network)."""
        return {} if self.network is None else self._network_call(self.network.rules)

    def run_on(self, node_name: str, argv: list[str], timeout_s: float = 10) -> subprocess.CompletedProcess:
        """Run argv from node's network position (its namespace), e.g. redis-cli, to check which links work."""
        node = self.config.node(node_name)
        command = self.network.exec_argv(node, argv) if self.network is not None else argv
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)

    def _signal_tree(self, node_name: str, signum: int) -> None:
        pid = self.pid(node_name)
        if pid is None:
            raise StackError(f"{node_name} is not running")
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            proc.send_signal(signum)

    # --------------------------------------------------------------- status
    def master_node(self) -> Node | None:
        return self.probe.master_node()

    def redis_roles(self) -> dict[str, str]:
        return self.probe.redis_roles()

    def healthy(self) -> bool:
        return self.probe.healthy()

    def status(self) -> list[NodeStatus]:
        return self.probe.status(self.supervisor.process_info() if self.supervisor.running() else {})

    def clean(self, progress=print) -> None:
        if self.supervisor.pid() is not None:
            raise StackError("the stack is running; `make down` first")
        if self.state_dir.exists():
            writable_again(self.state_dir)  # a disk fault never healed would make rmtree fail
            shutil.rmtree(self.state_dir)
            progress(f"removed {self.state_dir}")


def default_runtime(env=None) -> LocalRuntime:
    return LocalRuntime(StackConfig.from_env(env))


__all__ = ["LocalRuntime", "NodeStatus", "default_runtime"]
