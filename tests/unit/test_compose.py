"""The compose runtime's plan, from the generated compose file: start order, fixed addresses, settings it carries.

The runtime itself runs live on Podman in tests/integration/test_compose.py.
"""

from __future__ import annotations

import pytest
import yaml

from sessionproof.configs.compose_files import node_addresses
from sessionproof.runtimes.commands import ContainerError
from sessionproof.runtimes.compose import COMPOSE_FILE, ComposeRuntime, Container, start_order
from sessionproof.topology import StackConfig

NODES = [f"redis-{i}" for i in (1, 2, 3)] + [f"sentinel-{i}" for i in (1, 2, 3)] + ["app-1", "app-2", "app-3", "nginx"]


def test_services_start_in_the_order_of_depends_on():
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert start_order(document, NODES) == [NODES[:3], NODES[3:6], NODES[6:9], ["nginx"]]


def test_a_dependency_cycle_is_named():
    document = {"services": {"a": {"depends_on": {"b": {}}}, "b": {"depends_on": {"a": {}}}}}
    with pytest.raises(ContainerError, match="cycle"):
        start_order(document, ["a", "b"])


def test_every_node_has_a_fixed_address_in_every_container_hosts_file():
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    addresses = node_addresses("10.197.0.0/24", NODES)
    assert addresses["redis-2"] == "10.197.0.12" and addresses["sentinel-3"] == "10.197.0.23"
    assert addresses["app-1"] == "10.197.0.101" and addresses["nginx"] == "10.197.0.2"
    assert len(set(addresses.values())) == len(NODES)
    for name, service in document["services"].items():
        hosts = dict(entry.split(":") for entry in service["extra_hosts"])
        assert {n: hosts[n] for n in NODES} == addresses, name
        if name in addresses:
            assert service["networks"]["default"]["ipv4_address"] == addresses[name]
    ipam = document["networks"]["default"]["ipam"]["config"][0]
    assert ipam == {"subnet": "10.197.0.0/24", "ip_range": "10.197.0.192/26"}  # Locust's, away from the nodes'


def test_a_container_is_read_from_the_engine_inspect_output():
    inspected = {
        "Name": "sessionproof_redis-1_1",
        "State": {"Status": "running", "Pid": 4242, "Health": {"Status": "healthy"}},
        "Config": {"Labels": {"com.docker.compose.service": "redis-1"}, "Healthcheck": {"Test": ["CMD-SHELL", "x"]}},
        "NetworkSettings": {"Networks": {"sessionproof_default": {"IPAddress": "10.197.0.11"}}},
    }
    container = Container.from_inspect(inspected)
    assert container == Container("sessionproof_redis-1_1", "redis-1", "running", "healthy", True, 4242, "10.197.0.11")
    stopped = Container.from_inspect({"Name": "/x", "State": {"Status": "exited", "Pid": 0}, "Config": {}})
    assert (stopped.name, stopped.status, stopped.has_healthcheck, stopped.ip) == ("x", "exited", False, "")


def _engine_answering(info: str):
    """A runner whose `podman info` answers INFO (network backend, OCI runtime) and every other command ''."""
    calls: list[list[str]] = []

    def run(argv: list[str]) -> str:
        calls.append(argv)
        return info if argv[1:2] == ["info"] else ""

    run.calls = calls
    return run


def test_up_refuses_a_setting_the_generated_files_do_not_carry():
    env = {"SESSION_LAYER": "stock", "CONTAINER_ENGINE": "podman"}
    runtime = ComposeRuntime(StackConfig.from_env(env), runner=_engine_answering("netavark runc\n"))
    with pytest.raises(ContainerError, match="SESSION_LAYER=stock make generate"):
        runtime.up(progress=lambda *_: None)


@pytest.mark.parametrize(
    ("info", "named"),
    [("cni runc\n", "network backend is cni"), ("netavark crun\n", "OCI runtime is crun"), ("", "unknown")],
)
def test_up_refuses_podman_not_set_up_before_starting_anything(info, named):
    runner = _engine_answering(info)
    runtime = ComposeRuntime(StackConfig.from_env({"CONTAINER_ENGINE": "podman"}), runner=runner)
    with pytest.raises(ContainerError, match=named) as refused:
        runtime.up(progress=lambda *_: None)
    assert "`make deps`" in str(refused.value)
    assert [argv[1] for argv in runner.calls] == ["info"], "something ran before the engine's setup was checked"


def test_netavark_and_runc_pass_the_engine_check():
    runtime = ComposeRuntime(
        StackConfig.from_env({"CONTAINER_ENGINE": "podman"}), runner=_engine_answering("netavark runc\n")
    )
    runtime.check_engine_setup()
