"""The stack's shape and the configs rendered for the local runtime."""

from __future__ import annotations

import os
import re

import pytest

from sessionproof import settings
from sessionproof.configs.render import render_text
from sessionproof.runtimes.interface import StackError
from sessionproof.runtimes.local import LocalRuntime
from sessionproof.topology import StackConfig


def test_default_ports_leave_a_system_redis_on_6379_alone():
    config = StackConfig.from_env({})
    assert 6379 not in {node.port for node in config.nodes}
    assert [n.name for n in config.nodes] == [
        "redis-1", "redis-2", "redis-3", "sentinel-1", "sentinel-2", "sentinel-3",
        "app-1", "app-2", "app-3", "nginx",
    ]  # fmt: skip
    assert config.entry_url == "http://127.0.0.1:8080"


def test_fewer_than_two_apps_is_refused():
    with pytest.raises(settings.ConfigError, match="at least 2"):
        StackConfig.from_env({"APPS": "1"})


def test_overlapping_ports_are_refused_with_the_names_to_change():
    with pytest.raises(settings.ConfigError, match="APP_PORT_BASE"):
        StackConfig.from_env({"APP_PORT_BASE": "6381"})


def test_render_refuses_a_template_value_that_is_missing():
    with pytest.raises(KeyError, match="port"):
        render_text("listen {{port}};", {})
    assert render_text("listen {{port}}; $host", {"port": 1}) == "listen 1; $host"


@pytest.fixture
def rendered(tmp_path):
    runtime = LocalRuntime(StackConfig.from_env({"STATE_DIR": str(tmp_path), "APPS": "4", "NETWORK": "loopback"}))
    runtime.render()
    return runtime


def test_redis_configs_hold_the_settings_the_design_needs(rendered):
    master = (rendered.state_dir / "redis-1" / "redis.conf").read_text()
    replica = (rendered.state_dir / "redis-2" / "redis.conf").read_text()
    for line in (
        "bind 127.0.0.1",
        "appendonly yes",
        "appendfsync everysec",
        "min-replicas-to-write 1",
        "min-replicas-max-lag 1",
        "repl-diskless-sync-delay 0",
        "maxmemory-policy noeviction",
        "requirepass sessionproof-dev-password",
        "masterauth sessionproof-dev-password",
    ):
        assert line in master and line in replica
    assert "\nreplicaof " not in master
    assert "replicaof 127.0.0.1 6380" in replica


def test_sentinel_configs_monitor_with_quorum_2_and_1200ms(rendered):
    text = (rendered.state_dir / "sentinel-1" / "sentinel.conf").read_text()
    assert "sentinel monitor sessionproof 127.0.0.1 6380 2" in text
    assert "sentinel down-after-milliseconds sessionproof 1200" in text
    assert "sentinel auth-pass sessionproof sessionproof-dev-password" in text


def test_nginx_round_robins_over_every_replica_without_stickiness(rendered):
    text = (rendered.state_dir / "nginx" / "nginx.conf").read_text()
    for port in (8101, 8102, 8103, 8104):
        assert f"server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" in text
    for directive in (
        "zone app 64k;",
        "keepalive 32;",
        "keepalive_timeout 60s;",
        "proxy_next_upstream error timeout http_502 non_idempotent;",
        "proxy_set_header Idempotency-Key $idempotency_key;",
    ):
        assert directive in text
    for sticky in ("ip_hash", "hash ", "sticky", "least_conn"):
        assert sticky not in text
    assert "listen 127.0.0.1:8080;" in text


def test_nginx_re_sends_posts_only_for_the_hardened_layer(tmp_path):
    runtime = LocalRuntime(StackConfig.from_env({"STATE_DIR": str(tmp_path), "SESSION_LAYER": "stock"}))
    runtime.render()
    text = (runtime.state_dir / "nginx" / "nginx.conf").read_text()
    assert "proxy_next_upstream error timeout;" in text
    assert "proxy_next_upstream error timeout non_idempotent" not in text


def test_a_retry_budget_longer_than_nginx_waits_is_refused_by_every_runtime_and_by_generate(tmp_path):
    from sessionproof.configs.generate import generated_files
    from sessionproof.runtimes.factory import make_runtime

    env = {"STATE_DIR": str(tmp_path), "STORE_RETRY_BUDGET_S": "9", "NGINX_PROXY_READ_TIMEOUT_S": "10"}
    refused = "STORE_RETRY_BUDGET_S=9 leaves too little of NGINX_PROXY_READ_TIMEOUT_S=10"
    with pytest.raises(settings.ConfigError, match=refused):
        LocalRuntime(StackConfig.from_env(env)).render()
    with pytest.raises(settings.ConfigError, match=refused):
        generated_files(env)
    for stack in ("compose", "k8s"):
        with pytest.raises(settings.ConfigError, match=refused):  # before any docker or kubectl command
            make_runtime(stack, {**env, "STACK": stack}, runner=_no_commands).up(progress=lambda *_: None)
    with pytest.raises(settings.ConfigError, match="GUNICORN_KEEPALIVE_S=60 must be longer"):
        generated_files({"GUNICORN_KEEPALIVE_S": "60"})


def _no_commands(argv, *args, **kwargs):
    raise AssertionError(f"ran {argv} although the settings do not fit together")


def test_supervisor_runs_every_node_and_restarts_none_by_itself(rendered):
    text = rendered.supervisor.conf.read_text()
    for node in rendered.config.nodes:
        assert f"[program:{node.name}]" in text
    assert "autorestart=true" not in text
    assert 'INSTANCE_ID="app-4"' in text and 'SESSION_COOKIE_SECURE="false"' in text


def test_gunicorn_keepalive_must_outlive_nginx_keepalive(tmp_path):
    env = {"STATE_DIR": str(tmp_path), "GUNICORN_KEEPALIVE_S": "30", "NGINX_UPSTREAM_KEEPALIVE_TIMEOUT_S": "60"}
    with pytest.raises(settings.ConfigError, match="GUNICORN_KEEPALIVE_S=30 must be longer"):
        LocalRuntime(StackConfig.from_env(env)).render()


def test_a_state_dir_made_with_other_ports_is_not_silently_reused(rendered):
    env = {"STATE_DIR": str(rendered.state_dir), "REDIS_PORT_BASE": "7000"}
    with pytest.raises(StackError, match="make clean"):
        LocalRuntime(StackConfig.from_env(env)).render()


def test_a_rerender_keeps_the_topology_redis_and_sentinel_rewrote(rendered):
    conf = rendered.state_dir / "sentinel-1" / "sentinel.conf"
    conf.write_text(conf.read_text() + "# rewritten by sentinel\n")
    rendered.render()
    assert conf.read_text().endswith("# rewritten by sentinel\n")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="NETWORK=netns needs root")


@needs_root
def test_netns_gives_every_node_its_own_address_and_keeps_the_entry_point(tmp_path):
    config = StackConfig.from_env({"STATE_DIR": str(tmp_path), "NETWORK": "netns", "NETNS_SUBNET": "10.199.7.0/24"})
    hosts = {n.name: n.host for n in config.nodes}
    assert (
        hosts["redis-1"] == "10.199.7.11" and hosts["sentinel-3"] == "10.199.7.23" and hosts["app-2"] == "10.199.7.102"
    )
    assert hosts["nginx"] == "10.199.7.1"  # the bridge: nginx's side towards the apps
    assert len(set(hosts.values())) == len(hosts)
    assert config.entry_url == "http://127.0.0.1:8080"
    assert config.sentinels_setting == "10.199.7.21:26380,10.199.7.22:26381,10.199.7.23:26382"


@needs_root
def test_netns_configs_bind_and_announce_each_nodes_own_address(tmp_path):
    runtime = LocalRuntime(StackConfig.from_env({"STATE_DIR": str(tmp_path), "NETWORK": "netns"}))
    runtime.render()
    replica = (tmp_path / "redis-2" / "redis.conf").read_text()
    assert "bind 10.199.0.12" in replica and "replica-announce-ip 10.199.0.12" in replica
    assert "replicaof 10.199.0.11 6380" in replica
    sentinel = (tmp_path / "sentinel-1" / "sentinel.conf").read_text()
    assert "sentinel announce-ip 10.199.0.21" in sentinel and "announce-hostnames" not in sentinel
    assert "sentinel monitor sessionproof 10.199.0.11 6380 2" in sentinel
    nginx = (tmp_path / "nginx" / "nginx.conf").read_text()
    assert "listen 127.0.0.1:8080;" in nginx and "server 10.199.0.101:8101" in nginx
    supervisor = runtime.supervisor.conf.read_text()
    prefix = runtime.network.prefix
    assert f"netns exec {prefix}-redis-1 " in supervisor and f"netns exec {prefix}-app-3 " in supervisor
    assert "netns exec" not in supervisor.split("[program:nginx]")[1]  # the entry point stays in the host's


def test_netns_for_a_user_without_root_is_refused_naming_the_privilege(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert StackConfig.from_env({"NETWORK": "auto"}).network == "loopback"
    with pytest.raises(settings.ConfigError, match=r"needs root.*NETWORK=loopback"):
        StackConfig.from_env({"NETWORK": "netns"})


def test_network_faults_on_a_loopback_stack_fail_at_once_with_the_setting_and_privilege(tmp_path):
    from sessionproof.chaos.faults import FAULTS, NETWORK_FAULTS, inject
    from sessionproof.runs import EventLog

    runtime = LocalRuntime(StackConfig.from_env({"STATE_DIR": str(tmp_path), "NETWORK": "loopback"}))
    expected = {
        "partition-redis-master", "partition-app", "isolate-sentinel", "partition-sentinels-minority",
        "congest-redis-master", "cut-replica-from-master", "hide-replica-from-sentinels", "split-sentinel-views",
        "cut-apps-from-sentinels",
    }  # fmt: skip
    assert expected == NETWORK_FAULTS
    log = EventLog(tmp_path / "events.jsonl")
    for name in NETWORK_FAULTS:
        with pytest.raises(RuntimeError, match=r"NETWORK=netns.*needs root"):
            inject(FAULTS[name], runtime, log)
    assert not log.path.exists()


def test_a_bad_subnet_is_refused_with_an_example():
    if os.geteuid() != 0:
        pytest.skip("NETWORK=netns needs root")
    with pytest.raises(settings.ConfigError, match=re.escape("10.199.0.0/24")):
        StackConfig.from_env({"NETWORK": "netns", "NETNS_SUBNET": "10.1.2.0/28"})
