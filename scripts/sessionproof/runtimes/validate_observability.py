"""Static checks of the observability part of compose and k8s (make validate): Grafana's dashboard and
provisioning, the generated Prometheus configs, and their parity with the local runtime's.

1. the dashboard (services/grafana/dashboards/sessionproof.json) parses, has the required panels (by
   title), every panel has a query, every metric a query names is one the stack exports, and every
   query parses as PromQL (`promtool check rules`);
2. it uses the provisioned datasource (by uid), and compose mounts what Grafana's provisioning names;
3. the compose and k8s Prometheus configs pass `promtool check config`;
4. parity: their scrape interval, timeouts and jobs are the local runtime's (one function makes all three).

promtool (Debian's prometheus package) is optional: without it, 1's PromQL and 3 are skipped with a note.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from sessionproof import REPO_ROOT
from sessionproof.configs.observability import JOBS, scrape_interval_s
from sessionproof.configs.observability_files import (
    COMPOSE_PROMETHEUS_CONF,
    GRAFANA_DASHBOARD_PROVIDERS,
    GRAFANA_DASHBOARDS,
    GRAFANA_DASHBOARDS_MOUNT,
    GRAFANA_DATASOURCES,
    GRAFANA_PORT,
    K8S_PROMETHEUS_CONF,
    PROFILE,
)
from sessionproof.topology import APP_PORT, NGINX_STATUS_PORT, PROMETHEUS_PORT

DASHBOARD = f"{GRAFANA_DASHBOARDS}/sessionproof.json"
REQUIRED_PANELS = (
    "Request rate per replica",
    "Errors per replica (5xx, 503)",
    "p99 latency per replica",
    "Store retries by reason",
    "Replica lag behind the master (bytes)",
    "Redis role per node",
)
# What the exporters serve that the dashboard may use. Their names are not importable, so they are listed
# here from their sources: oliver006/redis_exporter 1.45 (exporter/exporter.go's metric maps, info.go for
# the per-replica and instance_info series) and nginx-prometheus-exporter 0.11 (collector/nginx.go).
REDIS_EXPORTER_METRICS = frozenset({
    "redis_up", "redis_instance_info", "redis_connected_slaves", "redis_master_repl_offset",
    "redis_connected_slave_offset_bytes", "redis_connected_slave_lag_seconds", "redis_connected_clients",
    "redis_commands_processed_total", "redis_memory_used_bytes", "redis_db_keys",
})  # fmt: skip
NGINX_EXPORTER_METRICS = frozenset({"nginx_up", "nginx_connections_active", "nginx_http_requests_total"})
PROMETHEUS_METRICS = frozenset({"up"})  # written by Prometheus for every target it scrapes
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:$.])[A-Za-z_:][\w:]*(?![\w:])")
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                       "unless", "offset", "atan2", "inf", "nan"})  # fmt: skip


def app_metrics() -> frozenset[str]:
    """What an app replica's /metrics serves, from its prometheus-client objects (multiprocess: no _created)."""
    from prometheus_client import Counter, Gauge, Histogram

    from sessionproof_app import metrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return frozenset(
        m.name + suffix
        for value in vars(metrics).values()
        if isinstance(value, Counter | Gauge | Histogram)
        for m in value.describe()
        for suffix in suffixes[m.type]
    )


def known_metrics() -> frozenset[str]:
    return app_metrics() | REDIS_EXPORTER_METRICS | NGINX_EXPORTER_METRICS | PROMETHEUS_METRICS


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are neither functions nor keywords."""
    names = set(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))  # {__name__="..."}
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, $__rate_interval included
    text = _GROUPING.sub(" ", text)
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        if name in _KEYWORDS or re.match(r"\s*\(", text[match.end() :]):  # followed by "(": a function
            continue
        names.add(name)
    return names


def _panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard.get("panels", []):
        panels += [panel] if panel.get("type") != "row" else []
        panels += panel.get("panels", [])  # a collapsed row's
    return panels


def _provisioned(root: Path, folder: str, key: str) -> list[dict]:
    """Every entry under key (datasources, providers) of a Grafana provisioning folder's YAML files."""
    files = sorted((root / folder).glob("*.yaml"))
    return [entry for f in files for entry in (yaml.safe_load(f.read_text()) or {}).get(key, [])]


def _datasource_uid(root: Path) -> str | None:
    sources = _provisioned(root, GRAFANA_DATASOURCES, "datasources")
    return sources[0].get("uid") if len(sources) == 1 else None


def _range_problems(title: str, expr: str) -> list[str]:
    """A range must hold several scrapes: $__rate_interval (at least 4 of the datasource's interval) or that long."""
    shortest = 4 * scrape_interval_s({})
    problems = []
    for window in re.findall(r"\[([^\]:]+)(?::[^\]]*)?\]", expr):
        match = re.fullmatch(r"(\d+)(ms|s|m|h)", window.strip())
        seconds = int(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match[2]] if match else None
        if window.strip() != "$__rate_interval" and (seconds is None or seconds < shortest):
            problems.append(
                f"dashboard: the panel {title!r} uses the range [{window}]: use $__rate_interval or >= {shortest}s"
            )
    return problems


def dashboard_problems(root: Path = REPO_ROOT, promtool: str | None = None) -> list[str]:
    path = root / DASHBOARD
    try:
        dashboard = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return [f"dashboard: {DASHBOARD} does not parse: {error}"]
    uid = _datasource_uid(root)
    known = known_metrics()
    panels = _panels(dashboard)
    problems = [
        f"dashboard: the panel {t!r} is missing" for t in REQUIRED_PANELS if t not in {p.get("title") for p in panels}
    ]
    exprs = []
    for panel in panels:
        title = panel.get("title", f"id {panel.get('id')}")
        targets = [t for t in panel.get("targets", []) if t.get("expr", "").strip()]
        if not targets:
            problems.append(f"dashboard: the panel {title!r} has no query")
        for source in [panel.get("datasource"), *(t.get("datasource") for t in targets)]:
            if (source or {}).get("uid") != uid:
                problems.append(
                    f"dashboard: the panel {title!r} uses datasource {source!r}, not the provisioned {uid!r}"
                )
        for target in targets:
            exprs.append(target["expr"])
            problems += _range_problems(title, target["expr"])
            unknown = sorted(metric_names(target["expr"]) - known)
            if unknown:
                problems.append(
                    f"dashboard: the panel {title!r} queries {', '.join(unknown)}, which the stack does not export"
                )
    if promtool:
        problems += _promql_problems(promtool, exprs)
    return problems


def _promql_problems(promtool: str, exprs: list[str]) -> list[str]:
    """Every query parsed by Prometheus's own parser: as recording rules, with Grafana's variables filled in."""
    rules = [
        {"record": f"dashboard_query_{i}", "expr": e.replace("$__rate_interval", "4s")} for i, e in enumerate(exprs)
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "queries.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return [f"dashboard: a query is not valid PromQL: {(done.stdout + done.stderr).strip()[-600:]}"]
    return []


def grafana_problems(root: Path = REPO_ROOT) -> list[str]:
    """The datasource (one Prometheus, at the scrape interval) and the provider (where compose mounts the dashboards)."""
    problems = []
    sources = _provisioned(root, GRAFANA_DATASOURCES, "datasources")
    url = f"http://prometheus:{PROMETHEUS_PORT}"
    if [(s.get("type"), s.get("url")) for s in sources] != [("prometheus", url)] or not sources[0].get("uid"):
        problems.append(f"grafana: {GRAFANA_DATASOURCES} must provision one Prometheus at {url}, with a uid")
    elif sources[0].get("jsonData", {}).get("timeInterval") != f"{scrape_interval_s({})}s":
        problems.append(
            "grafana: the datasource's timeInterval must be the scrape interval (METRICS_SCRAPE_INTERVAL_S)"
        )
    providers = _provisioned(root, GRAFANA_DASHBOARD_PROVIDERS, "providers")
    if [p.get("options", {}).get("path") for p in providers] != [GRAFANA_DASHBOARDS_MOUNT]:
        problems.append(
            f"grafana: the dashboard provider must read {GRAFANA_DASHBOARDS_MOUNT}, where compose mounts them"
        )
    return problems


def compose_problems(services: dict, root: Path = REPO_ROOT) -> list[str]:
    problems = []
    for name in ("redis-exporter", "nginx-exporter", "prometheus", "grafana"):
        service = services.get(name)
        if service is None:
            problems.append(f"compose: service {name} is missing")
        elif service.get("profiles") != [PROFILE]:
            problems.append(f"compose: {name} must be in the {PROFILE} profile only")
        for volume in (service or {}).get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and not (root / "compose" / source).exists():
                problems.append(f"compose: {name} mounts {source}, which does not exist")
    for name, port in (("prometheus", PROMETHEUS_PORT), ("grafana", GRAFANA_PORT)):
        if services.get(name, {}).get("ports") != [f"127.0.0.1:{port}:{port}"]:
            problems.append(f"compose: {name} must publish {port} on 127.0.0.1 only")
    return problems


def k8s_problems(objects: list[dict]) -> list[str]:
    """The observability overlay: Prometheus may list pods, the exporters run, the app pods say where to scrape."""
    by_kind_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    needed = [("Deployment", n) for n in ("prometheus", "redis-exporter", "nginx-exporter")]
    needed += [("Service", n) for n in ("prometheus", "redis-exporter", "nginx-exporter")]
    needed += [("ServiceAccount", "prometheus"), ("Role", "prometheus"), ("RoleBinding", "prometheus")]
    problems = [f"{kind}/{name} is missing" for kind, name in needed if (kind, name) not in by_kind_name]
    role = by_kind_name.get(("Role", "prometheus"), {})
    if not any("pods" in r.get("resources", []) and "list" in r.get("verbs", []) for r in role.get("rules", [])):
        problems.append("Role/prometheus must allow listing pods (the app's discovery)")
    prometheus = by_kind_name.get(("Deployment", "prometheus"), {}).get("spec", {}).get("template", {}).get("spec", {})
    if prometheus and prometheus.get("serviceAccountName") != "prometheus":
        problems.append("Deployment/prometheus must run as ServiceAccount prometheus")
    nginx_ports = by_kind_name.get(("Service", "nginx"), {}).get("spec", {}).get("ports", [])
    if NGINX_STATUS_PORT not in [port.get("port") for port in nginx_ports]:
        problems.append(f"Service/nginx must expose stub_status ({NGINX_STATUS_PORT}) for the nginx exporter")
    maps = [o for o in objects if o["kind"] == "ConfigMap" and "prometheus.yml" in o.get("data", {})]
    mounted = [v.get("configMap", {}).get("name") for v in prometheus.get("volumes", [])]
    if not maps or maps[0]["metadata"]["name"] not in mounted:
        problems.append("Deployment/prometheus must mount the ConfigMap that holds prometheus.yml")
    return problems


def app_annotation_problems(app_deployment: dict) -> list[str]:
    annotations = app_deployment["spec"]["template"]["metadata"].get("annotations", {})
    want = {"prometheus.io/scrape": "true", "prometheus.io/port": str(APP_PORT), "prometheus.io/path": "/metrics"}
    return (
        [] if all(annotations.get(k) == v for k, v in want.items()) else [f"the app pods need the annotations {want}"]
    )


def prometheus_problems(local_conf: str, root: Path = REPO_ROOT, notes: list[str] | None = None) -> list[str]:
    """promtool on the compose and k8s configs, and their parity with the local one."""
    notes = [] if notes is None else notes
    local = yaml.safe_load(local_conf)
    problems = []
    promtool = shutil.which("promtool")
    if promtool is None:
        notes.append("promtool is not installed (Debian: prometheus): the Prometheus configs were not checked by it")
    for relative in (COMPOSE_PROMETHEUS_CONF, K8S_PROMETHEUS_CONF):
        path = root / relative
        if not path.exists():
            problems.append(f"prometheus: {relative} is missing")
            continue
        config = yaml.safe_load(path.read_text())
        if promtool:
            problems += [f"prometheus: {relative}: {p}" for p in promtool_config_problems(promtool, config, notes)]
        if config.get("global") != local.get("global"):
            problems.append(
                f"parity: {relative} global {config.get('global')} differs from local {local.get('global')}"
            )
        jobs = [job.get("job_name") for job in config.get("scrape_configs", [])]
        if jobs != [job["job_name"] for job in local["scrape_configs"]] or tuple(jobs) != JOBS:
            problems.append(f"parity: {relative} jobs {jobs} differ from local {list(JOBS)}")
        for job, local_job in zip(config.get("scrape_configs", []), local["scrape_configs"], strict=False):
            if job.get("metrics_path") != local_job.get("metrics_path"):
                problems.append(f"parity: {relative} job {job.get('job_name')} has another metrics_path than local")
            if any("node" not in group.get("labels", {}) for group in job.get("static_configs", [])):
                problems.append(f"parity: {relative} job {job.get('job_name')} has a target without a node label")
    return problems


def promtool_config_problems(promtool: str, config: dict, notes: list[str]) -> list[str]:
    """`promtool check config`; Debian's build has no Kubernetes discovery, so that block is then swapped for a
    static placeholder (its relabelling still checked) and a note says so."""
    config = copy.deepcopy(config)
    if not _promtool_knows_kubernetes(promtool):
        swapped = [j for j in config.get("scrape_configs", []) if j.pop("kubernetes_sd_configs", None) is not None]
        for job in swapped:
            job["static_configs"] = [{"targets": ["kubernetes-sd-placeholder:1"]}]
            notes.append(f"promtool has no Kubernetes discovery (Debian's build): job {job['job_name']}'s "
                         "kubernetes_sd_configs was not checked by it, only its relabelling")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, check=False)
    return [] if done.returncode == 0 else [(done.stdout + done.stderr).strip()[-600:]]


def _promtool_knows_kubernetes(promtool: str) -> bool:
    probe = {"scrape_configs": [{"job_name": "probe", "kubernetes_sd_configs": [{"role": "pod"}]}]}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.yml"
        path.write_text(yaml.safe_dump(probe))
        done = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, check=False)
    return done.returncode == 0
