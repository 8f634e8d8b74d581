"""The local runtime: every node a real process under supervisord, on loopback or, with
NETWORK=netns, each Redis, Sentinel and app node in a network namespace of its own (netns.py).

Layout of STATE_DIR (git-ignored):
  supervisord.conf, supervisor.sock, stack.json (resolved ports)
  redis-N/{redis.conf, appendonlydir/}   sentinel-N/sentinel.conf
  nginx/nginx.conf (+ temp dirs)          logs/<node>.log   run/*.pid
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

import psutil
from supervisor.xmlrpc import SupervisorTransport

from sessionproof import REPO_ROOT, SERVICES_DIR, settings
from sessionproof.configs import templates as configs
from sessionproof.configs.render import write_if_changed
from sessionproof.runtimes import probes
from sessionproof.runtimes.netns import NetworkError, NodeNetwork
from sessionproof.topology import Node, StackConfig
from sessionproof.waiting import wait_until

# The app's settings (gunicorn's included), forwarded to every replica when the user set them.
_APP_SETTING_NAMES = [s.name for s in settings.APP_SETTINGS]
_UP_STATES = ("RUNNING", "STARTING")
# What Redis and Sentinel keep in the config files they rewrite: changing it needs a fresh state folder.
_STATEFUL_KEYS = ("bind_host", "redis_port_base", "sentinel_port_base", "master_name", "password", "network", "subnet")

# State folders made before a key existed were made with these values.
_DEFAULTS_BEFORE = {"network": "loopback", "subnet": None}


class StackError(RuntimeError):
    """The stack cannot do what was asked; the message says what to do."""


@dataclass(frozen=True)
class NodeStatus:
    node: Node
    state: str  # RUNNING, STOPPED, EXITED, FATAL, ... as supervisor says; or "PAUSED"
    pid: int | None
    role: str  # master / replica / sentinel / app / entry, "?" when unknown
    detail: str


def require_binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        raise StackError(
            f"{name} is not installed; `make deps` installs it (apt-get install redis-server redis-sentinel nginx)"
        )
    return path


class LocalRuntime:
    name = "local"

    def __init__(self, config: StackConfig):
        self.config = config
        self.state_dir = config.state_dir
        self.password = config.get("REDIS_PASSWORD")
        self.master_name = config.get("REDIS_MASTER_NAME")
        self.network = NodeNetwork(config) if config.netns else None

    # ----------------------------------------------------------------- paths
    @property
    def supervisor_conf(self) -> Path:
        return self.state_dir / "supervisord.conf"

    @property
    def supervisor_pidfile(self) -> Path:
        return self.state_dir / "run" / "supervisord.pid"

    @property
    def supervisor_socket(self) -> Path:
        path = self.state_dir / "supervisor.sock"
        if len(str(path)) < 100:
            return path
        # AF_UNIX paths are limited to ~107 bytes; fall back to a short, stable name.
        digest = hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"sessionproof-{digest}.sock"

    def log_path(self, node_name: str) -> Path:
        return self.state_dir / "logs" / f"{node_name}.log"

    # ------------------------------------------------------------ rendering
    def _stateful_fingerprint(self) -> dict:
        return {
            "bind_host": self.config.bind_host,
            "redis_port_base": self.config.redis_port_base,
            "sentinel_port_base": self.config.sentinel_port_base,
            "master_name": self.master_name,
            "password": hashlib.sha256(self.password.encode()).hexdigest(),
            "network": self.config.network,
            "subnet": self.config.subnet if self.config.netns else None,
        }

    def render(self) -> bool:
        """Write every config; True when nginx's changed. Redis and Sentinel files are written once: they
        rewrite them themselves as the topology changes (failover), so a re-run
        of `up` keeps the topology they learnt."""
        for sub in ("logs", "run", "nginx/client_body", "nginx/proxy", "nginx/fastcgi", "nginx/uwsgi", "nginx/scgi"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        fingerprint_file = self.state_dir / "stack.json"
        fingerprint = self._stateful_fingerprint()
        if fingerprint_file.exists():
            previous = json.loads(fingerprint_file.read_text())
            changed = [k for k in _STATEFUL_KEYS if previous.get(k, _DEFAULTS_BEFORE.get(k)) != fingerprint[k]]
            if changed:
                raise StackError(
                    f"{self.state_dir} holds a Redis/Sentinel topology made with other settings "
                    f"({', '.join(changed)}); run `make clean` to start afresh (this deletes its session data)"
                )
        write_if_changed(fingerprint_file, json.dumps(fingerprint, indent=2) + "\n")
        self._render_data_nodes()
        nginx_changed = self._render_nginx()
        self._render_supervisor()
        return nginx_changed

    def _render_data_nodes(self) -> None:
        """redis-N/redis.conf and sentinel-N/sentinel.conf, each written only if absent."""
        master = self.config.redis_nodes[0]
        for node in [*self.config.redis_nodes, *self.config.sentinel_nodes]:
            conf = self.state_dir / node.name / f"{node.kind}.conf"
            if conf.exists():
                continue
            common = {
                "name": node.name,
                "bind_host": node.host,
                "port": node.port,
                "data_dir": conf.parent,
                "password": self.password,
                "announce_host": node.host if self.config.netns else None,
            }
            if node.kind == "redis":
                replica_of = None if node == master else (master.host, master.port)
                text = configs.redis_conf(self.config.env, replica_of=replica_of, **common)
            else:
                text = configs.sentinel_conf(self.config.env, master=(master.host, master.port), **common)
            write_if_changed(conf, text, mode=0o600)

    def nginx_text(self) -> str:
        return configs.nginx_conf(
            self.config.env,
            state_dir=self.state_dir,
            bind_host=self.config.bind_host,
            port=self.config.nginx_port,
            upstreams=[(n.host, n.port) for n in self.config.app_nodes],
        )

    def _render_nginx(self) -> bool:
        configs.check_timeouts(self.config.env)
        text = self.nginx_text()
        return write_if_changed(self.state_dir / "nginx" / "nginx.conf", text)

    def app_environment(self, node: Node) -> dict[str, str]:
        env = {name: self.config.env[name] for name in _APP_SETTING_NAMES if self.config.env.get(name)}
        env.setdefault("SESSION_COOKIE_SECURE", "false")  # plain http on loopback
        env.update(
            INSTANCE_ID=node.name,
            SENTINELS=self.config.sentinels_setting,
            REDIS_PASSWORD=self.password,
            REDIS_MASTER_NAME=self.master_name,
            PYTHONUNBUFFERED="1",
        )
        return env

    def _program(self, node: Node, command: str, directory: Path, environment: dict[str, str] | None = None) -> str:
        if self.network is not None:
            command = " ".join(self.network.exec_argv(node, [command]))
        lines = [
            f"[program:{node.name}]",
            f"command={command}",
            f"directory={directory}",
            "autostart=false",
            # Faults decide when a node comes back; a supervisor restart would hide them.
            "autorestart=false",
            "startsecs=1",
            "startretries=0",
            "stopsignal=TERM",
            "stopwaitsecs=10",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={self.log_path(node.name)}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            "redirect_stderr=true",
        ]
        if environment:
            pairs = ",".join(f'{k}="{_supervisor_escape(v)}"' for k, v in sorted(environment.items()))
            lines.append(f"environment={pairs}")
        return "\n".join(lines) + "\n"

    def _render_supervisor(self) -> bool:
        redis_server = require_binary("redis-server")
        redis_sentinel = require_binary("redis-sentinel")
        nginx = require_binary("nginx")
        gunicorn = Path(sys.executable).parent / "gunicorn"
        if not gunicorn.exists():
            raise StackError(f"{gunicorn} is missing; run `make venv` (or `make up`, which creates the environment)")
        sections = [
            "[unix_http_server]",
            f"file={self.supervisor_socket}",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={self.state_dir / 'logs' / 'supervisord.log'}",
            f"pidfile={self.supervisor_pidfile}",
            f"childlogdir={self.state_dir / 'logs'}",
            f"directory={self.state_dir}",
            "nodaemon=false",
            "minfds=4096",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.supervisor_socket}",
            "",
        ]
        body = "\n".join(sections)
        for node in self.config.redis_nodes:
            body += self._program(
                node, f"{redis_server} {self.state_dir / node.name / 'redis.conf'}", self.state_dir / node.name
            )
        for node in self.config.sentinel_nodes:
            body += self._program(
                node, f"{redis_sentinel} {self.state_dir / node.name / 'sentinel.conf'}", self.state_dir / node.name
            )
        for node in self.config.app_nodes:
            command = (
                f"{gunicorn} -c {SERVICES_DIR / 'app' / 'gunicorn.conf.py'} "
                f"--bind {node.address} --pythonpath {SERVICES_DIR / 'app'}"
            )
            body += self._program(node, command, SERVICES_DIR / "app", self.app_environment(node))
        nginx_dir = self.state_dir / "nginx"
        body += self._program(
            self.config.nginx_node,
            f"{nginx} -c {nginx_dir / 'nginx.conf'} -p {nginx_dir}/ -e {self.state_dir / 'logs' / 'nginx-error.log'}",
            nginx_dir,
        )
        return write_if_changed(self.supervisor_conf, body.replace("\n[program", "\n\n[program"))

    # ------------------------------------------------------------ supervisor
    def call(self, method: str, *args):
        """One supervisord XML-RPC call (`supervisor.<method>`) over its unix socket."""
        transport = SupervisorTransport(None, None, f"unix://{self.supervisor_socket}")
        try:
            proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
            return getattr(proxy.supervisor, method)(*args)
        finally:
            transport.close()

    def supervisord_pid(self) -> int | None:
        try:
            pid = int(self.supervisor_pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            # A SIGKILLed supervisord can linger as a zombie where nothing reaps orphans (containers).
            return pid if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None
        except psutil.NoSuchProcess:
            return None

    def supervisor_running(self) -> bool:
        if self.supervisord_pid() is None:
            return False
        try:
            return self.call("getState")["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def _start_supervisord(self) -> None:
        supervisord = Path(sys.executable).parent / "supervisord"
        subprocess.run([str(supervisord), "-c", str(self.supervisor_conf)], check=True, cwd=self.state_dir)
        wait_until(
            self.supervisor_running, 15, "supervisord to answer", hint=f"see {self.state_dir}/logs/supervisord.log"
        )

    def _apply_supervisor_changes(self) -> None:
        """What `supervisorctl update` does: pick up added, changed and removed programs."""
        added, changed, removed = self.call("reloadConfig")[0]
        for name in changed + removed:
            self._stop_program(name)
            self.call("removeProcessGroup", name)
        for name in changed + added:
            self.call("addProcessGroup", name)

    def process_info(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.call("getAllProcessInfo")}

    def _start_program(self, name: str) -> None:
        try:
            self.call("startProcess", name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                log = self.log_path(name)
                raise StackError(f"{name} did not start ({fault.faultString}); see {log}") from None

    def _stop_program(self, name: str) -> None:
        try:
            self.call("stopProcess", name, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString and "BAD_NAME" not in fault.faultString:
                raise

    # ------------------------------------------------------------- lifecycle
    def up(self, timeout_s: float | None = None, progress=print) -> None:
        timeout_s = timeout_s or settings.get_int("STACK_UP_TIMEOUT_S", self.config.env, minimum=1)
        nginx_changed = self.render()
        if self.network is not None:
            progress(f"network: a namespace per node on {self.config.subnet} (bridge {self.network.bridge})")
            self._network_call(self.network.create)
        if self.supervisor_running():
            progress(f"supervisord already running (pid {self.supervisord_pid()}); bringing every node up")
            self._apply_supervisor_changes()
        else:
            progress("starting supervisord")
            self._start_supervisord()
        info = self.process_info()
        for group, check, what in (
            (self.config.redis_nodes, self._redis_ready, "Redis answers and replicas are in sync"),
            (self.config.sentinel_nodes, self._sentinels_ready, "Sentinels agree on the master and see every node"),
            (self.config.app_nodes, self._apps_ready, "every app replica is ready (/readyz)"),
            ([self.config.nginx_node], self._nginx_ready, "nginx serves /ping"),
        ):
            names = [n.name for n in group]
            progress(f"starting {', '.join(names)}")
            for name in names:
                if info.get(name, {}).get("statename") != "RUNNING":
                    self._start_program(name)
                else:
                    self.resume(name)  # a node left paused by a fault would never answer
            wait_until(check, timeout_s, what, interval_s=0.2, hint=f"logs: {self.state_dir / 'logs'}")
            progress(f"  ok: {what}")
            if group[0].kind == "redis":
                self._apply_min_replicas()
        if nginx_changed:
            # Only then: a reload closes idle client connections, which a client can see as an error.
            self._reload_nginx()
        names = [n.name for n in self.config.nodes]
        wait_until(
            lambda: all(self.process_info()[n]["statename"] == "RUNNING" for n in names),
            timeout_s,
            "supervisor to report every node RUNNING",
        )
        # Each group was ready when checked, but a failover still in flight (a master that was
        # paused for a while) can change the topology after its check: wait until it has settled.
        wait_until(
            self._topology_settled,
            timeout_s,
            "one Redis master, the one every Sentinel names, with its replicas in sync",
            interval_s=0.2,
            hint=f"logs: {self.state_dir / 'logs'}",
        )

    def _apply_min_replicas(self) -> None:
        """REDIS_MIN_REPLICAS_* on every running node (and into its config file): they can change without
        `make clean`, e.g. between the configurations of `make experiments`."""
        to_write = settings.get_int("REDIS_MIN_REPLICAS_TO_WRITE", self.config.env, minimum=0)
        max_lag_s = settings.get_int("REDIS_MIN_REPLICAS_MAX_LAG_S", self.config.env, minimum=1)
        for node in self.config.redis_nodes:
            with probes.redis_client(node.host, node.port, self.password) as client:
                current = client.config_get("min-replicas-*")
                if current == {"min-replicas-to-write": str(to_write), "min-replicas-max-lag": str(max_lag_s)}:
                    continue
                client.config_set("min-replicas-to-write", to_write)
                client.config_set("min-replicas-max-lag", max_lag_s)
                client.config_rewrite()

    def _network_call(self, action, *args):
        try:
            return action(*args)
        except NetworkError as error:
            raise StackError(str(error)) from None

    def _topology_settled(self) -> bool:
        if not (self._redis_ready() and self._sentinels_ready()):
            return False
        master = self.master_node()
        return master is not None and self.redis_roles().get(master.name) == "master"

    def _reload_nginx(self) -> None:
        # A re-run with another APPS rewrites the upstream list; HUP makes nginx read it.
        info = self.process_info().get("nginx")
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
            tree = _process_tree(proc.pid)  # the workers would outlive their master
            for member in tree:
                member.kill()
            psutil.wait_procs(tree, timeout=5)

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
        pid = self.supervisord_pid()
        if pid is None:
            self._stop_orphaned_nginx(progress)
            progress("nothing is running")
            return
        tree = _process_tree(pid)
        try:
            for node in reversed(self.config.nodes):  # entry first, data last
                self.resume(node.name)
            progress("stopping every node")
            self.call("stopAllProcesses", True)
            self.call("shutdown")
        except (OSError, xmlrpc.client.Fault) as error:
            progress(f"supervisord did not answer ({error}); stopping its processes by pid")
        _gone, alive = psutil.wait_procs([psutil.Process(pid)], timeout=20) if psutil.pid_exists(pid) else ([], [])
        leftovers = [p for p in tree if p.is_running()]
        for proc in leftovers + alive:
            progress(f"killing leftover pid {proc.pid} ({' '.join(proc.cmdline()[:2])})")
            proc.kill()
        psutil.wait_procs(leftovers + alive, timeout=5)
        self._stop_orphaned_nginx(progress)
        progress("stopped")

    # --------------------------------------------------------------- faults
    def pid(self, node_name: str) -> int | None:
        info = self.process_info().get(node_name)
        if info is None:
            raise KeyError(f"no node named {node_name!r}")
        return info["pid"] or None

    def kill(self, node_name: str) -> int:
        """SIGKILL a node and everything it forked, the way a machine dies."""
        pid = self.pid(node_name)
        if pid is None:
            raise StackError(f"{node_name} is not running")
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        for proc in procs:
            proc.send_signal(signal.SIGCONT)  # a paused process must not linger
            proc.kill()
        psutil.wait_procs(procs, timeout=5)
        return pid

    def pause(self, node_name: str) -> None:
        self._signal_tree(node_name, signal.SIGSTOP)

    def resume(self, node_name: str) -> None:
        with contextlib.suppress(StackError, psutil.NoSuchProcess):
            self._signal_tree(node_name, signal.SIGCONT)

    def start(self, node_name: str) -> None:
        """Start a stopped or killed node (no-op when it runs); resume it if it was paused."""
        info = self.process_info().get(node_name)
        if info is None:
            raise KeyError(f"no node named {node_name!r}")
        if info["statename"] in _UP_STATES:
            self.resume(node_name)
        else:
            self._start_program(node_name)

    def stop(self, node_name: str) -> None:
        """Graceful stop (SIGTERM, as a deployment would)."""
        self.resume(node_name)
        self._stop_program(node_name)

    def is_running(self, node_name: str) -> bool:
        info = self.process_info().get(node_name)
        return bool(info) and info["statename"] in _UP_STATES and not _is_stopped(info["pid"])

    def wait_node_ready(self, node_name: str, timeout_s: float = 30) -> None:
        node = self.config.node(node_name)
        checks = {
            "app": lambda: probes.http_ok(f"http://{node.address}/readyz"),
            "nginx": self._nginx_ready,
            "redis": lambda: probes.redis_replication(node.host, node.port, self.password) is not None,
            "sentinel": lambda: probes.sentinel_view(node.host, node.port, self.password, self.master_name) is not None,
        }
        wait_until(checks[node.kind], timeout_s, f"{node_name} to be ready")

    def restart(self, node_name: str, timeout_s: float = 30) -> None:
        """Graceful stop, start, and wait until the node is ready again."""
        self.stop(node_name)
        self._start_program(node_name)
        self.wait_node_ready(node_name, timeout_s)

    def redis_roles(self) -> dict[str, str]:
        """Each Redis node's own view of its role: master, replica or down."""
        roles = {}
        for node in self.config.redis_nodes:
            info = probes.redis_replication(node.host, node.port, self.password)
            roles[node.name] = {"master": "master", "slave": "replica"}.get((info or {}).get("role"), "down")
        return roles

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
    def sentinel_view(self) -> probes.SentinelView | None:
        for node in self.config.sentinel_nodes:
            view = probes.sentinel_view(node.host, node.port, self.password, self.master_name)
            if view is not None:
                return view
        return None

    def master_node(self) -> Node | None:
        """The Redis node Sentinel names master, or None if no Sentinel answers."""
        view = self.sentinel_view()
        if view is None or view.master is None:
            return None
        for node in self.config.redis_nodes:
            if (node.host, node.port) == view.master:
                return node
        return None

    def status(self) -> list[NodeStatus]:
        info = self.process_info() if self.supervisor_running() else {}
        view = self.sentinel_view() if info else None
        rows = []
        for node in self.config.nodes:
            proc = info.get(node.name, {})
            state = proc.get("statename", "DOWN")
            pid = proc.get("pid") or None
            if pid and _is_stopped(pid):
                state = "PAUSED"
            role, detail = self._role(node, view, state)
            rows.append(NodeStatus(node, state, pid, role, detail))
        return rows

    def _role(self, node: Node, view: probes.SentinelView | None, state: str) -> tuple[str, str]:
        host = node.host
        if node.kind == "redis":
            own = probes.redis_replication(host, node.port, self.password) if state in _UP_STATES else None
            own_role = {"master": "master", "slave": "replica"}.get((own or {}).get("role"), "down")
            if view is None:
                return "?", f"self: {own_role} (no Sentinel answers)"
            if view.master == (host, node.port):
                return "master", f"self: {own_role}"
            flags = next((f for h, p, f in view.replicas if (h, p) == (host, node.port)), None)
            if flags is None:
                return "?", f"self: {own_role}; unknown to Sentinel"
            return "replica", f"self: {own_role}; sentinel flags: {flags}"
        if node.kind == "sentinel":
            mine = (
                probes.sentinel_view(host, node.port, self.password, self.master_name) if state in _UP_STATES else None
            )
            if mine is None:
                return "sentinel", "not answering"
            master = f"{mine.master[0]}:{mine.master[1]}" if self.config.netns else str(mine.master[1])
            return "sentinel", f"master {master}, {mine.other_sentinels} peers, {len(mine.replicas)} replicas"
        if node.kind == "app":
            code, _ = probes.http_get_json(f"http://{host}:{node.port}/readyz") if state in _UP_STATES else (0, None)
            return "app", {200: "ready", 503: "store unreachable", 0: "not answering"}.get(code, f"HTTP {code}")
        code, _ = probes.http_get_json(f"{self.config.entry_url}/ping") if state in _UP_STATES else (0, None)
        return "entry", f"{self.config.entry_url} " + ("serving" if code == 200 else f"HTTP {code or 'none'}")

    # ------------------------------------------------------------ readiness
    def _redis_ready(self) -> bool:
        infos = [probes.redis_replication(n.host, n.port, self.password) for n in self.config.redis_nodes]
        if any(i is None for i in infos):
            return False
        masters = [i for i in infos if i["role"] == "master"]
        replicas = [i for i in infos if i["role"] == "slave"]
        return (
            len(masters) == 1
            and len(replicas) == len(infos) - 1
            and all(r.get("master_link_status") == "up" for r in replicas)
        )

    def _sentinels_ready(self) -> bool:
        expected_peers = len(self.config.sentinel_nodes) - 1
        expected_replicas = len(self.config.redis_nodes) - 1
        masters = set()
        for node in self.config.sentinel_nodes:
            view = probes.sentinel_view(node.host, node.port, self.password, self.master_name)
            # Flags other than plain "master" (s_down, o_down, failover_in_progress, ...) mean not settled.
            if view is None or view.master_flags != "master" or view.other_sentinels < expected_peers:
                return False
            healthy = [r for r in view.replicas if "down" not in r[2] and "disconnected" not in r[2]]
            if len(healthy) < expected_replicas:
                return False
            masters.add(view.master)
        return len(masters) == 1

    def _apps_ready(self) -> bool:
        return all(probes.http_ok(f"http://{n.address}/readyz") for n in self.config.app_nodes)

    def _nginx_ready(self) -> bool:
        return probes.http_ok(f"{self.config.entry_url}/ping")

    def healthy(self) -> bool:
        return all(check() for check in (self._topology_settled, self._apps_ready, self._nginx_ready))

    def clean(self, progress=print) -> None:
        if self.supervisord_pid() is not None:
            raise StackError("the stack is running; `make down` first")
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
            progress(f"removed {self.state_dir}")


def _supervisor_escape(value: str) -> str:
    # supervisor expands %(name)s in values and reads quotes; keep both literal.
    return value.replace("%", "%%").replace('"', '\\"')


def _is_stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:
        return False


def _process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def default_runtime(env=None) -> LocalRuntime:
    return LocalRuntime(StackConfig.from_env(env))


__all__ = ["REPO_ROOT", "LocalRuntime", "NodeStatus", "StackError", "default_runtime"]
