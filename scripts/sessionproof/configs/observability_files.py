"""The observability part of compose and k8s: Prometheus, the Redis and nginx exporters, and (compose) Grafana.

The same programs, versions and flags as the local runtime (runtimes/local_files.py): Debian's
prometheus 2.42, prometheus-redis-exporter 1.45 and prometheus-nginx-exporter 0.11, here as
their official images. Prometheus's config comes from `observability.prometheus_conf`, as the
local one does, so jobs, `node` labels and the interval are the same in every runtime.

Grafana is not packaged for the Debian machine the local runtime targets, so it exists in
compose only: a provisioned datasource and the dashboard (services/grafana/), checked
statically by `make validate`.
"""

from __future__ import annotations

from collections.abc import Mapping

from sessionproof.configs.container_files import GENERATED, PASSWORD_FILE, yaml_documents
from sessionproof.configs.observability import exporter_timeout, lookback_delta, prometheus_conf
from sessionproof.topology import (
    APP_PORT,
    NGINX_EXPORTER_PORT,
    NGINX_STATUS_PORT,
    PROMETHEUS_PORT,
    REDIS_EXPORTER_PORT,
    REDIS_PORT,
)

PROMETHEUS_IMAGE = "prom/prometheus:v2.42.0"  # Debian bookworm's prometheus 2.42.0
REDIS_EXPORTER_IMAGE = "oliver006/redis_exporter:v1.45.0"  # prometheus-redis-exporter 1.45.0 (FROM scratch)
# The same build on Alpine: it has the shell that reads the compose secret into the environment (below).
REDIS_EXPORTER_SHELL_IMAGE = "oliver006/redis_exporter:v1.45.0-alpine"
NGINX_EXPORTER_IMAGE = "nginx/nginx-prometheus-exporter:0.11.0"  # prometheus-nginx-exporter 0.11.0
GRAFANA_IMAGE = "grafana/grafana:10.4.2"  # not packaged by Debian
GRAFANA_PORT = 3000
PROFILE = "observability"
# In the repository, mounted read-only by compose: the datasource (its uid is the dashboard's) and the dashboard.
GRAFANA_DATASOURCES = "services/grafana/provisioning/datasources"
GRAFANA_DASHBOARD_PROVIDERS = "services/grafana/provisioning/dashboards"
GRAFANA_DASHBOARDS = "services/grafana/dashboards"
GRAFANA_DASHBOARDS_MOUNT = "/etc/sessionproof/dashboards"  # the provider's options.path
COMPOSE_PROMETHEUS_CONF = "compose/config/prometheus.yml"
K8S_OVERLAY = "k8s/overlays/observability"
K8S_PROMETHEUS_CONF = f"{K8S_OVERLAY}/config/prometheus.yml"
_RETENTION = "--storage.tsdb.retention.size=2GB"  # as the local runtime's


def _prometheus_args(env: Mapping[str, str], config_file: str, data_dir: str) -> list[str]:
    return [
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        _RETENTION,
        f"--query.lookback-delta={lookback_delta(env)}",
    ]


def _redis_exporter_args(env: Mapping[str, str]) -> list[str]:
    # Only the multi-target /scrape is used, so no default target (-redis.addr ""), as in the local runtime.
    return [
        "-redis.addr=",
        f"-web.listen-address=:{REDIS_EXPORTER_PORT}",
        f"-connection-timeout={exporter_timeout(env)}",
    ]


def _nginx_exporter_args(env: Mapping[str, str], nginx_host: str) -> list[str]:
    return [
        f"-nginx.scrape-uri=http://{nginx_host}:{NGINX_STATUS_PORT}/stub_status",
        f"-nginx.timeout={exporter_timeout(env)}",
        # 0.11 exits when stub_status does not answer at start-up; it waits for nginx instead.
        "-nginx.retries=30",
        "-nginx.retry-interval=2s",
        f"-web.listen-address=:{NGINX_EXPORTER_PORT}",
    ]


# --- compose ----------------------------------------------------------------------------------------------


def compose_prometheus_conf(env: Mapping[str, str], app_hosts: list[str], redis_hosts: list[str]) -> str:
    return GENERATED + prometheus_conf(
        env,
        apps=[(h, f"{h}:{APP_PORT}") for h in app_hosts],
        redis=[(h, f"{h}:{REDIS_PORT}") for h in redis_hosts],
        redis_exporter=f"redis-exporter:{REDIS_EXPORTER_PORT}",
        nginx_exporter=f"nginx-exporter:{NGINX_EXPORTER_PORT}",
        prometheus=f"prometheus:{PROMETHEUS_PORT}",
    )


def compose_services(env: Mapping[str, str]) -> dict[str, dict]:
    """The `observability` profile: `docker compose --profile observability up` adds these four."""
    # Never a fault's target, so they come back by themselves (the stack's nodes use restart: "no").
    common = {"profiles": [PROFILE], "restart": "unless-stopped"}
    exporter_command = " ".join(["exec /redis_exporter", *(f"'{a}'" for a in _redis_exporter_args(env))])
    return {
        "redis-exporter": {
            **common,
            "image": f"${{REDIS_EXPORTER_IMAGE:-{REDIS_EXPORTER_SHELL_IMAGE}}}",
            # The password comes from the app's source, the redis_password secret (a plain file). The exporter's
            # own -redis.password-file wants a JSON map of URI -> password, which that file is not, and
            # REDIS_PASSWORD in `environment:` would put the password into this file; so a shell reads the secret
            # into REDIS_PASSWORD, the exporter's environment only (not its command line, which `ps` shows),
            # as the local runtime passes it. Hence the Alpine build of the same version: the default one has no shell.
            "secrets": ["redis_password"],
            "entrypoint": [
                "sh",
                "-c",
                f'REDIS_PASSWORD="$$(cat {PASSWORD_FILE})"; export REDIS_PASSWORD; {exporter_command}',
            ],
        },
        "nginx-exporter": {
            **common,
            "image": f"${{NGINX_EXPORTER_IMAGE:-{NGINX_EXPORTER_IMAGE}}}",
            "command": _nginx_exporter_args(env, "nginx"),
            "depends_on": {"nginx": {"condition": "service_healthy"}},
        },
        "prometheus": {
            **common,
            "image": f"${{PROMETHEUS_IMAGE:-{PROMETHEUS_IMAGE}}}",
            "command": _prometheus_args(env, "/etc/prometheus/prometheus.yml", "/prometheus"),
            "volumes": ["./config/prometheus.yml:/etc/prometheus/prometheus.yml:ro", "prometheus-data:/prometheus"],
            "ports": [f"127.0.0.1:{PROMETHEUS_PORT}:{PROMETHEUS_PORT}"],
        },
        "grafana": {
            **common,
            "image": GRAFANA_IMAGE,
            "environment": {
                # A local harness: anyone who reaches the loopback port may look, nobody may edit without a login.
                "GF_AUTH_ANONYMOUS_ENABLED": "true",
                "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
                "GF_USERS_ALLOW_SIGN_UP": "false",
                "GF_ANALYTICS_REPORTING_ENABLED": "false",
                "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
                "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": f"{GRAFANA_DASHBOARDS_MOUNT}/sessionproof.json",
            },
            "volumes": [
                f"../{GRAFANA_DATASOURCES}:/etc/grafana/provisioning/datasources:ro",
                f"../{GRAFANA_DASHBOARD_PROVIDERS}:/etc/grafana/provisioning/dashboards:ro",
                f"../{GRAFANA_DASHBOARDS}:{GRAFANA_DASHBOARDS_MOUNT}:ro",
            ],
            "ports": [f"127.0.0.1:{GRAFANA_PORT}:{GRAFANA_PORT}"],
            "depends_on": {"prometheus": {"condition": "service_started"}},
        },
    }


# --- k8s ----------------------------------------------------------------------------------------------------


def k8s_files(env: Mapping[str, str], redis_pods: list[str]) -> dict[str, str]:
    """k8s/overlays/observability/: its config and manifests (its kustomization.yaml is written by hand)."""
    files = {
        K8S_PROMETHEUS_CONF: GENERATED
        + prometheus_conf(
            env,
            apps=None,  # discovered: one Deployment of interchangeable pods (observability.KUBERNETES_APP_PODS)
            redis=[(pod, f"{pod}.redis:{REDIS_PORT}") for pod in redis_pods],
            redis_exporter=f"redis-exporter:{REDIS_EXPORTER_PORT}",
            nginx_exporter=f"nginx-exporter:{NGINX_EXPORTER_PORT}",
            prometheus=f"localhost:{PROMETHEUS_PORT}",
        ),
        f"{K8S_OVERLAY}/prometheus.yaml": yaml_documents(*_k8s_prometheus(env)),
        f"{K8S_OVERLAY}/exporters.yaml": yaml_documents(*_k8s_exporters(env)),
    }
    return files


def _labels(component: str) -> dict:
    return {"app.kubernetes.io/name": "sessionproof", "app.kubernetes.io/component": component}


def _service(name: str, port: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {"selector": _labels(name), "ports": [{"name": name, "port": port, "targetPort": port}]},
    }


def _deployment(name: str, pod_spec: dict) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _labels(name)},
            "template": {"metadata": {"labels": _labels(name)}, "spec": pod_spec},
        },
    }


def _container(name: str, image: str, args: list[str], port: int, ready_path: str) -> dict:
    return {
        "name": name,
        "image": image,
        "args": args,
        "ports": [{"name": "metrics", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": ready_path, "port": port}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    }


def _k8s_prometheus(env: Mapping[str, str]) -> list[dict]:
    """Prometheus with the right to list and watch this namespace's pods (the app's discovery), nothing else."""
    meta = {"name": "prometheus", "labels": _labels("prometheus")}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta,
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "prometheus"},
        "subjects": [{"kind": "ServiceAccount", "name": "prometheus"}],
    }
    container = _container(
        "prometheus",
        PROMETHEUS_IMAGE,
        _prometheus_args(env, "/etc/prometheus/prometheus.yml", "/prometheus"),
        PROMETHEUS_PORT,
        "/-/ready",
    )
    container["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    container["volumeMounts"] = [
        {"name": "config", "mountPath": "/etc/prometheus", "readOnly": True},
        {"name": "data", "mountPath": "/prometheus"},
    ]
    deployment = _deployment(
        "prometheus",
        {
            "serviceAccountName": "prometheus",
            "containers": [container],
            "volumes": [
                {"name": "config", "configMap": {"name": "sessionproof-prometheus-config"}},
                {"name": "data", "emptyDir": {"sizeLimit": "3Gi"}},  # a harness's Prometheus: data lives with the pod
            ],
        },
    )
    # ClusterIP only: `kubectl port-forward svc/prometheus 9090` to look.
    return [account, role, binding, _service("prometheus", PROMETHEUS_PORT), deployment]


def _k8s_exporters(env: Mapping[str, str]) -> list[dict]:
    redis = _container(
        "redis-exporter", REDIS_EXPORTER_IMAGE, _redis_exporter_args(env), REDIS_EXPORTER_PORT, "/health"
    )
    # The password from the same Secret the app and Redis mount, as an environment variable (the
    # exporter's REDIS_PASSWORD): Kubernetes can do that without a shell, so the default image serves.
    redis["env"] = [
        {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sessionproof-redis", "key": "password"}}}
    ]
    # One exporter for one nginx pod (the dev overlay runs one): stub_status through the nginx Service, whose
    # status port this overlay adds. With several nginx pods it would need to be a sidecar in each.
    nginx = _container(
        "nginx-exporter", NGINX_EXPORTER_IMAGE, _nginx_exporter_args(env, "nginx"), NGINX_EXPORTER_PORT, "/metrics"
    )
    return [
        _service("redis-exporter", REDIS_EXPORTER_PORT),
        _deployment("redis-exporter", {"containers": [redis]}),
        _service("nginx-exporter", NGINX_EXPORTER_PORT),
        _deployment("nginx-exporter", {"containers": [nginx]}),
    ]
