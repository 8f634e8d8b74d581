"""make validate, observability: the Grafana dashboard and provisioning, the Prometheus configs of compose and k8s."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from sessionproof import REPO_ROOT
from sessionproof.configs import generate
from sessionproof.runtimes import validate
from sessionproof.runtimes import validate_observability as observability

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")


@pytest.fixture
def tree(tmp_path):
    """A copy of what the observability checks read: compose/, k8s/ and services/grafana/."""
    for name in ("compose", "k8s", "services/grafana"):
        shutil.copytree(REPO_ROOT / name, tmp_path / name)
    return tmp_path


def dashboard(root) -> dict:
    return json.loads((root / observability.DASHBOARD).read_text())


def save(root, document: dict) -> None:
    (root / observability.DASHBOARD).write_text(json.dumps(document))


def panel(document: dict, title: str) -> dict:
    return next(p for p in document["panels"] if p["title"] == title)


def test_the_committed_dashboard_and_provisioning_pass():
    assert observability.dashboard_problems(REPO_ROOT, PROMTOOL) == []
    assert observability.grafana_problems(REPO_ROOT) == []


def test_a_panel_querying_a_metric_the_stack_does_not_export_fails(tree):
    document = dashboard(tree)
    target = panel(document, "Store retries by reason")["targets"][0]
    target["expr"] = target["expr"].replace("sessionproof_store_retries_total", "sessionproof_store_retry_total")
    save(tree, document)
    problems = observability.dashboard_problems(tree)
    assert problems == [
        "dashboard: the panel 'Store retries by reason' queries sessionproof_store_retry_total, "
        "which the stack does not export"
    ]


def test_a_missing_required_panel_or_query_fails(tree):
    document = dashboard(tree)
    document["panels"] = [p for p in document["panels"] if p["title"] != "Replica lag behind the master (bytes)"]
    panel(document, "Redis role per node")["targets"] = [{"refId": "A", "expr": " "}]
    save(tree, document)
    problems = observability.dashboard_problems(tree)
    assert "dashboard: the panel 'Replica lag behind the master (bytes)' is missing" in problems
    assert "dashboard: the panel 'Redis role per node' has no query" in problems


def test_a_panel_on_another_datasource_or_a_dashboard_that_does_not_parse_fails(tree):
    document = dashboard(tree)
    panel(document, "p99 latency per replica")["datasource"] = {"type": "prometheus", "uid": "other"}
    save(tree, document)
    assert any("'p99 latency per replica' uses datasource" in p for p in observability.dashboard_problems(tree))
    (tree / observability.DASHBOARD).write_text("{not json")
    assert observability.dashboard_problems(tree)[0].startswith("dashboard: services/grafana/dashboards/")


def test_a_rate_window_shorter_than_four_scrapes_fails(tree):
    document = dashboard(tree)
    target = panel(document, "Request rate per replica")["targets"][0]
    target["expr"] = target["expr"].replace("$__rate_interval", "2s")
    save(tree, document)
    assert observability.dashboard_problems(tree) == [
        "dashboard: the panel 'Request rate per replica' uses the range [2s]: use $__rate_interval or >= 4s"
    ]


@needs_promtool
def test_a_query_that_is_not_promql_fails(tree):
    document = dashboard(tree)
    panel(document, "Request rate per replica")["targets"][0]["expr"] = (
        "sum by (node) (rate(sessionproof_requests_total[$__rate_interval])"
    )
    save(tree, document)
    assert any("not valid PromQL" in p for p in observability.dashboard_problems(tree, PROMTOOL))


def test_metric_names_are_read_from_queries_without_functions_labels_or_keywords():
    expr = (
        'histogram_quantile(0.99, sum by (le, node) (rate(a_bucket{status=~"5..", x="by(y)"}[$__rate_interval])))'
        ' - on (node) group_right () b_total offset 1m > bool 1e3 or ignoring(z) {__name__="c"}'
    )
    assert observability.metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_the_app_metric_names_come_from_its_prometheus_client_objects():
    names = observability.app_metrics()
    assert {
        "sessionproof_requests_total",
        "sessionproof_request_seconds_bucket",
        "sessionproof_master_changes_total",
    } <= names
    assert "sessionproof_requests" not in names and "sessionproof_requests_created" not in names


def test_the_datasource_and_provider_must_match_what_compose_mounts(tree):
    datasource = tree / observability.GRAFANA_DATASOURCES / "prometheus.yaml"
    datasource.write_text(datasource.read_text().replace("timeInterval: 1s", "timeInterval: 15s"))
    provider = tree / observability.GRAFANA_DASHBOARD_PROVIDERS / "sessionproof.yaml"
    provider.write_text(provider.read_text().replace("/etc/sessionproof/dashboards", "/var/lib/grafana/dashboards"))
    problems = observability.grafana_problems(tree)
    assert any("timeInterval" in p for p in problems) and any("dashboard provider" in p for p in problems)


def test_the_compose_profile_keeps_its_services_on_loopback_and_its_mounts_existing(tree):
    services = yaml.safe_load((tree / "compose/docker-compose.yml").read_text())["services"]
    assert observability.compose_problems(services, tree) == []
    services["prometheus"]["ports"] = ["9090:9090"]
    del services["grafana"]["profiles"]
    shutil.rmtree(tree / "services/grafana/dashboards")
    problems = observability.compose_problems(services, tree)
    assert "compose: prometheus must publish 9090 on 127.0.0.1 only" in problems
    assert "compose: grafana must be in the observability profile only" in problems
    assert "compose: grafana mounts ../services/grafana/dashboards, which does not exist" in problems


def test_compose_and_k8s_scrape_the_same_jobs_at_the_same_interval_as_local(tree):
    local = validate.local_configs()["prometheus"]
    assert observability.prometheus_problems(local, REPO_ROOT) == []
    files = generate.generated_files()
    for relative in ("compose/config/prometheus.yml", "k8s/overlays/observability/config/prometheus.yml"):
        assert yaml.safe_load(files[relative])["global"] == yaml.safe_load(local)["global"], relative
    path = tree / "compose/config/prometheus.yml"
    path.write_text(
        path.read_text()
        .replace("scrape_interval: 1s", "scrape_interval: 5s")
        .replace("job_name: nginx", "job_name: web")
    )
    problems = observability.prometheus_problems(local, tree)
    assert any(p.startswith("parity: compose/config/prometheus.yml global") for p in problems), problems
    assert any(p.startswith("parity: compose/config/prometheus.yml jobs") for p in problems), problems


@needs_promtool
def test_promtool_rejects_a_broken_prometheus_config(tree):
    path = tree / "k8s/overlays/observability/config/prometheus.yml"
    path.write_text(path.read_text().replace("regex: app\n", "regex: (app\n"))
    notes: list[str] = []
    problems = observability.prometheus_problems(validate.local_configs()["prometheus"], tree, notes)
    assert any(p.startswith("prometheus: k8s/overlays/observability/config/prometheus.yml: ") for p in problems)


def test_the_observability_overlay_needs_prometheus_allowed_to_list_pods_and_annotated_app_pods(tree):
    objects = validate.k8s_objects(tree / "k8s/overlays/observability")
    assert observability.k8s_problems(objects) == []
    role = next(o for o in objects if o["kind"] == "Role")
    role["rules"][0]["verbs"] = ["get"]
    app = next(o for o in objects if (o["kind"], o["metadata"]["name"]) == ("Deployment", "app"))
    assert observability.app_annotation_problems(app) == []
    del app["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
    nginx = next(o for o in objects if (o["kind"], o["metadata"]["name"]) == ("Service", "nginx"))
    nginx["spec"]["ports"] = nginx["spec"]["ports"][:1]
    objects = [o for o in objects if o["kind"] != "ServiceAccount"]
    problems = observability.k8s_problems(objects) + observability.app_annotation_problems(app)
    assert "ServiceAccount/prometheus is missing" in problems
    assert "Role/prometheus must allow listing pods (the app's discovery)" in problems
    assert any(p.startswith("the app pods need the annotations") for p in problems)
    assert "Service/nginx must expose stub_status (8081) for the nginx exporter" in problems


@needs_promtool
def test_the_lag_and_role_queries_compute_what_their_titles_say(tmp_path):
    """The dashboard's own queries on series shaped like the exporter's, evaluated by `promtool test rules`."""
    document = dashboard(REPO_ROOT)
    lag = panel(document, "Replica lag behind the master (bytes)")["targets"][0]["expr"]
    role = panel(document, "Redis role per node")["targets"][0]["expr"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "lag", "expr": lag}, {"record": "role", "expr": role}]}]}))  # fmt: skip
    master, replica = 'node="redis-1",instance="redis://redis-1:6379"', 'node="redis-2",instance="redis://redis-2:6379"'
    series = {
        f"redis_master_repl_offset{{{master}}}": "1000 2000 3000",
        f"redis_master_repl_offset{{{replica}}}": "900 1900 2900",
        f'redis_connected_slave_offset_bytes{{{master},slave_ip="redis-2",slave_port="6379"}}': "900 1900 2500",
        f'redis_instance_info{{{master},role="master"}}': "1 1 stale",
        f'redis_instance_info{{{replica},role="slave"}}': "1 1 1",
        f"redis_up{{{master}}}": "1 1 0",
        f"redis_up{{{replica}}}": "1 1 1",
    }
    lag_labels = f'lag{{{master},slave_ip="redis-2",slave_port="6379"}}'
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1s",
        "tests": [{
            "interval": "1s",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "promql_expr_test": [
                {"expr": "lag", "eval_time": "2s", "exp_samples": [{"labels": lag_labels, "value": 500}]},
                {"expr": "role", "eval_time": "1s", "exp_samples": [
                    {"labels": 'role{node="redis-1"}', "value": 1}, {"labels": 'role{node="redis-2"}', "value": 0}]},
                {"expr": "role", "eval_time": "2s", "exp_samples": [
                    {"labels": 'role{node="redis-1"}', "value": -1}, {"labels": 'role{node="redis-2"}', "value": 0}]},
            ],
        }],
    }  # fmt: skip
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests))
    done = subprocess.run([PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
