"""The files of a local stack in STATE_DIR: Redis, Sentinel and nginx configs, supervisord.conf, stack.json.

Redis and Sentinel files are written once: they rewrite them themselves as the topology
changes (failover), so a re-run of `up` keeps the topology they learnt. stack.json records
the settings those files were made with, and a later `up` with other ones is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from sessionproof import SERVICES_DIR, engines, settings
from sessionproof.configs import templates as configs
from sessionproof.configs.observability import exporter_timeout, lookback_delta, prometheus_conf
from sessionproof.configs.render import write_if_changed
from sessionproof.runtimes.interface import StackError
from sessionproof.runtimes.netns import NodeNetwork
from sessionproof.runtimes.supervisor import Supervisor
from sessionproof.topology import Node, StackConfig

# The app's settings (gunicorn's included), forwarded to every replica when the user set them.
_APP_SETTING_NAMES = [s.name for s in settings.APP_SETTINGS]
# What Redis and Sentinel keep in the config files they rewrite: changing it needs a fresh state folder.
_STATEFUL_KEYS = ("bind_host", "redis_port_base", "sentinel_port_base", "master_name", "password", "network", "subnet")
# State folders made before a key existed were made with these values.
_DEFAULTS_BEFORE = {"network": "loopback", "subnet": None}
_STATE_SUBDIRS = ("logs", "run", "nginx/client_body", "nginx/proxy", "nginx/fastcgi", "nginx/uwsgi", "nginx/scgi")
# The Debian packages of the binaries the stack runs.
_PACKAGES = {
    "redis-cli": "redis-tools",
    "nginx": "nginx",
    "prometheus": "prometheus",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "prometheus-nginx-exporter": "prometheus-nginx-exporter",
}


def require_binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        hint = " (or OBSERVABILITY=off to run the stack without Prometheus)" if name.startswith("prometheus") else ""
        raise StackError(
            f"{name} is not installed; `make deps` installs it (apt-get install {_PACKAGES.get(name, name)}){hint}"
        )
    return path


class LocalFiles:
    def __init__(self, config: StackConfig, supervisor: Supervisor, network: NodeNetwork | None):
        self.config = config
        self.state_dir = config.state_dir
        self.supervisor = supervisor
        self.network = network

    def render(self) -> bool:
        """Write every config; True when nginx's changed (it then needs a reload)."""
        for sub in _STATE_SUBDIRS:
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self._check_fingerprint()
        self._render_data_nodes()
        nginx_changed = self._render_nginx()
        if self.config.observability:
            write_if_changed(self.prometheus_dir / "prometheus.yml", self.prometheus_text())
        self._render_supervisor()
        return nginx_changed

    @property
    def prometheus_dir(self) -> Path:
        return self.state_dir / "prometheus"

    def prometheus_text(self) -> str:
        config = self.config
        return prometheus_conf(
            config.env,
            apps=[(n.name, n.address) for n in config.app_nodes],
            redis=[(n.name, n.address) for n in config.redis_nodes],
            redis_exporter=config.node("redis-exporter").address,
            nginx_exporter=config.node("nginx-exporter").address,
            prometheus=config.node("prometheus").address,
        )

    def _fingerprint(self) -> dict:
        return {
            "bind_host": self.config.bind_host,
            "redis_port_base": self.config.redis_port_base,
            "sentinel_port_base": self.config.sentinel_port_base,
            "master_name": self.config.get("REDIS_MASTER_NAME"),
            "password": hashlib.sha256(self.config.get("REDIS_PASSWORD").encode()).hexdigest(),
            "network": self.config.network,
            "subnet": self.config.subnet if self.config.netns else None,
            "engine": self.config.store_engine,  # not stateful (each engine has its own data dir), but one at a time
        }

    def _check_fingerprint(self) -> None:
        fingerprint_file = self.state_dir / "stack.json"
        fingerprint = self._fingerprint()
        if fingerprint_file.exists():
            previous = json.loads(fingerprint_file.read_text())
            changed = [k for k in _STATEFUL_KEYS if previous.get(k, _DEFAULTS_BEFORE.get(k)) != fingerprint[k]]
            if changed:
                raise StackError(
                    f"{self.state_dir} holds a Redis/Sentinel topology made with other settings "
                    f"({', '.join(changed)}); run `make clean` to start afresh (this deletes its session data)"
                )
            running = previous.get("engine", "redis")
            if running != fingerprint["engine"] and self.supervisor.running():
                raise StackError(
                    f"the stack in {self.state_dir} runs {running}, not {fingerprint['engine']} (STORE_ENGINE); "
                    f"stop it first: `make down`, then `STORE_ENGINE={fingerprint['engine']} make up` "
                    "(each engine keeps its own data)"
                )
        write_if_changed(fingerprint_file, json.dumps(fingerprint, indent=2) + "\n")

    def _render_data_nodes(self) -> None:
        """redis-N/redis.conf and sentinel-N/sentinel.conf, each written only if absent."""
        master = self.config.redis_nodes[0]
        for node in [*self.config.redis_nodes, *self.config.sentinel_nodes]:
            conf = self.config.data_dir / node.name / f"{node.kind}.conf"
            if conf.exists():
                continue
            common = {
                "name": node.name,
                "bind_host": node.host,
                "port": node.port,
                "data_dir": conf.parent,
                "password": self.config.get("REDIS_PASSWORD"),
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
            status_listen=f"{self.config.bind_host}:{self.config.nginx_status_port}",
        )

    def _render_nginx(self) -> bool:
        configs.check_timeouts(self.config.env)
        return write_if_changed(self.state_dir / "nginx" / "nginx.conf", self.nginx_text())

    def app_environment(self, node: Node) -> dict[str, str]:
        env = {name: self.config.env[name] for name in _APP_SETTING_NAMES if self.config.env.get(name)}
        env.setdefault("SESSION_COOKIE_SECURE", "false")  # plain http on loopback
        env.update(
            INSTANCE_ID=node.name,
            SENTINELS=self.config.sentinels_setting,
            REDIS_PASSWORD=self.config.get("REDIS_PASSWORD"),
            REDIS_MASTER_NAME=self.config.get("REDIS_MASTER_NAME"),
            PYTHONUNBUFFERED="1",
        )
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(self.state_dir / "metrics" / node.name))
        return env

    def _program(self, node: Node, command: str, directory: Path, environment: dict[str, str] | None = None) -> str:
        if self.network is not None:
            command = " ".join(self.network.exec_argv(node, [command]))
        return self.supervisor.program_section(node.name, command, directory, environment)

    def _render_supervisor(self) -> bool:
        try:
            engine = engines.engine(self.config.store_engine)
        except engines.EngineMissing as error:
            raise StackError(str(error)) from None
        nginx = require_binary("nginx")
        gunicorn = Path(sys.executable).parent / "gunicorn"
        if not gunicorn.exists():
            raise StackError(f"{gunicorn} is missing; run `make venv` (or `make up`, which creates the environment)")
        programs = []
        redis_cli = require_binary("redis-cli")
        catch_up = "yes" if settings.get_bool("REDIS_CATCH_UP_BEFORE_PROMOTION", self.config.env) else "no"
        for node in self.config.redis_nodes:
            conf = self.config.data_dir / node.name / "redis.conf"
            command = (
                f"sh {SERVICES_DIR / 'redis' / 'start-redis-node.sh'} {conf} {catch_up} {engine.server} {redis_cli}"
            )
            programs.append(self._program(node, command, conf.parent))
        for node in self.config.sentinel_nodes:
            conf = self.config.data_dir / node.name / "sentinel.conf"
            programs.append(self._program(node, engine.sentinel_command(conf), conf.parent))
        for node in self.config.app_nodes:
            command = (
                f"{gunicorn} -c {SERVICES_DIR / 'app' / 'gunicorn.conf.py'} "
                f"--bind {node.address} --pythonpath {SERVICES_DIR / 'app'}"
            )
            programs.append(self._program(node, command, SERVICES_DIR / "app", self.app_environment(node)))
        nginx_dir = self.state_dir / "nginx"
        command = (
            f"{nginx} -c {nginx_dir / 'nginx.conf'} -p {nginx_dir}/ -e {self.state_dir / 'logs' / 'nginx-error.log'}"
        )
        programs.append(self._program(self.config.nginx_node, command, nginx_dir))
        if self.config.observability:
            programs += self._observability_programs()
        return self.supervisor.write_conf(programs)

    def _observability_programs(self) -> list[str]:
        """The exporters and Prometheus, in the host's namespace, where every node's address is reachable."""
        config = self.config
        redis_exporter, nginx_exporter, prometheus = (
            config.node(n) for n in ("redis-exporter", "nginx-exporter", "prometheus")
        )
        scrape_timeout, lookback = exporter_timeout(config.env), lookback_delta(config.env)
        return [
            self.supervisor.program_section(
                redis_exporter.name,
                # Its default target is not ours: only the multi-target /scrape is used. The password comes from
                # the environment (REDIS_PASSWORD), not the command line, where `ps` would show it.
                f"{require_binary('prometheus-redis-exporter')} -web.listen-address {redis_exporter.address} "
                f'-redis.addr "" -connection-timeout {scrape_timeout}',
                self.state_dir,
                {"REDIS_PASSWORD": config.get("REDIS_PASSWORD")},
            ),
            self.supervisor.program_section(
                nginx_exporter.name,
                f"{require_binary('prometheus-nginx-exporter')} -web.listen-address {nginx_exporter.address} "
                f"-nginx.scrape-uri {config.nginx_status_url} -nginx.timeout {scrape_timeout}",
                self.state_dir,
                None,
            ),
            self.supervisor.program_section(
                prometheus.name,
                f"{require_binary('prometheus')} --config.file={self.prometheus_dir / 'prometheus.yml'} "
                f"--storage.tsdb.path={self.prometheus_dir / 'data'} --web.listen-address={prometheus.address} "
                f"--storage.tsdb.retention.size=2GB --query.lookback-delta={lookback}",
                self.prometheus_dir,
                None,
            ),
        ]
