"""supervisord, which runs every node of the local stack: its config file, its XML-RPC calls and its pid.

Each node is one [program:<name>] that never starts or restarts by itself: the harness
decides when a node runs (`up`), and a fault decides when it stops; a supervisor restart
would hide the fault.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import psutil
from supervisor.xmlrpc import SupervisorTransport

from sessionproof.configs.render import write_if_changed
from sessionproof.runtimes.interface import StackError
from sessionproof.waiting import wait_until

UP_STATES = ("RUNNING", "STARTING")


class Supervisor:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir

    # ----------------------------------------------------------------- paths
    @property
    def conf(self) -> Path:
        return self.state_dir / "supervisord.conf"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "run" / "supervisord.pid"

    @property
    def socket(self) -> Path:
        path = self.state_dir / "supervisor.sock"
        if len(str(path)) < 100:
            return path
        # AF_UNIX paths are limited to ~107 bytes; fall back to a short, stable name.
        digest = hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"sessionproof-{digest}.sock"

    def log_path(self, program: str) -> Path:
        return self.state_dir / "logs" / f"{program}.log"

    # ---------------------------------------------------------------- config
    def program_section(self, name: str, command: str, directory: Path, environment: dict[str, str] | None) -> str:
        lines = [
            f"[program:{name}]",
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
            f"stdout_logfile={self.log_path(name)}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            "redirect_stderr=true",
        ]
        if environment:
            pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(environment.items()))
            lines.append(f"environment={pairs}")
        return "\n".join(lines) + "\n"

    def write_conf(self, programs: list[str]) -> bool:
        """supervisord.conf with these [program] sections; True when it changed."""
        sections = [
            "[unix_http_server]",
            f"file={self.socket}",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={self.state_dir / 'logs' / 'supervisord.log'}",
            f"pidfile={self.pidfile}",
            f"childlogdir={self.state_dir / 'logs'}",
            f"directory={self.state_dir}",
            "nodaemon=false",
            "minfds=4096",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.socket}",
            "",
        ]
        return write_if_changed(self.conf, "\n".join(sections) + "\n" + "\n".join(programs))

    # ---------------------------------------------------------------- daemon
    def call(self, method: str, *args):
        """One supervisord XML-RPC call (`supervisor.<method>`) over its unix socket."""
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        try:
            proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
            return getattr(proxy.supervisor, method)(*args)
        finally:
            transport.close()

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            # A SIGKILLed supervisord can linger as a zombie where nothing reaps orphans (containers).
            return pid if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None
        except psutil.NoSuchProcess:
            return None

    def running(self) -> bool:
        if self.pid() is None:
            return False
        try:
            return self.call("getState")["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def start(self) -> None:
        supervisord = Path(sys.executable).parent / "supervisord"
        subprocess.run([str(supervisord), "-c", str(self.conf)], check=True, cwd=self.state_dir)
        wait_until(self.running, 15, "supervisord to answer", hint=f"see {self.state_dir}/logs/supervisord.log")

    def apply_changes(self) -> None:
        """What `supervisorctl update` does: pick up added, changed and removed programs."""
        added, changed, removed = self.call("reloadConfig")[0]
        for name in changed + removed:
            self.stop_program(name)
            self.call("removeProcessGroup", name)
        for name in changed + added:
            self.call("addProcessGroup", name)

    def shutdown(self) -> None:
        """Stop every program, then supervisord itself."""
        self.call("stopAllProcesses", True)
        self.call("shutdown")

    # -------------------------------------------------------------- programs
    def process_info(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.call("getAllProcessInfo")}

    def program_pid(self, name: str) -> int | None:
        info = self.process_info().get(name)
        if info is None:
            raise KeyError(f"no node named {name!r}")
        return info["pid"] or None

    def start_program(self, name: str) -> None:
        try:
            self.call("startProcess", name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise StackError(f"{name} did not start ({fault.faultString}); see {self.log_path(name)}") from None

    def stop_program(self, name: str) -> None:
        try:
            self.call("stopProcess", name, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString and "BAD_NAME" not in fault.faultString:
                raise


def _escape(value: str) -> str:
    # supervisor expands %(name)s in values and reads quotes; keep both literal.
    return value.replace("%", "%%").replace('"', '\\"')


def is_stopped(pid: int) -> bool:
    """True when the process is paused (SIGSTOP)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:
        return False


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
