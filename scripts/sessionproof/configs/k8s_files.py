"""k8s/base/: the Kubernetes manifests, their configs and the app's env file."""

from __future__ import annotations

from collections.abc import Mapping

from sessionproof import SERVICES_DIR, settings
from sessionproof.configs.container_files import (
    APP_IMAGE,
    COUNT,
    LOADGEN_IMAGE,
    LOCUST_WEB_PORT,
    NGINX_IMAGE,
    PASSWORD_FILE,
    REDIS_IMAGE,
    app_env,
    catch_up_argument,
    env_file,
    nginx_file,
    redis_confs,
    sentinel_confs,
    yaml_documents,
)
from sessionproof.configs.observability_files import k8s_files as observability_files
from sessionproof.topology import APP_PORT, NGINX_PORT, REDIS_PORT, SENTINEL_PORT


def k8s_files(env: Mapping[str, str]) -> dict[str, str]:
    redis_hosts = [f"redis-{i}.redis" for i in range(COUNT)]
    sentinel_hosts = [f"sentinel-{i}.sentinel" for i in range(COUNT)]
    # Named by StatefulSet ordinal: a pod picks /config/<kind>-<ordinal>.conf.
    files = {f"k8s/base/config/redis-{i}.conf": t for i, t in enumerate(redis_confs(env, redis_hosts))}
    files |= {
        f"k8s/base/config/sentinel-{i}.conf": t
        for i, t in enumerate(sentinel_confs(env, sentinel_hosts, redis_hosts[0]))
    }
    files["k8s/base/config/nginx.conf"] = nginx_file(env, ["app"])
    files["k8s/base/config/app.env"] = env_file(app_env(env, sentinel_hosts))
    files["k8s/base/config/container-entrypoint.sh"] = (SERVICES_DIR / "redis" / "container-entrypoint.sh").read_text()
    files["k8s/base/config/start-redis-node.sh"] = (SERVICES_DIR / "redis" / "start-redis-node.sh").read_text()
    apps = settings.get_int("APPS", env, minimum=2)
    files["k8s/base/redis.yaml"] = yaml_documents(*_data_statefulset("redis", REDIS_PORT, catch_up_argument(env)))
    files["k8s/base/sentinel.yaml"] = yaml_documents(*_data_statefulset("sentinel", SENTINEL_PORT))
    files["k8s/base/app.yaml"] = yaml_documents(*_app_documents(apps))
    files["k8s/base/nginx.yaml"] = yaml_documents(*_nginx_documents())
    files["k8s/base/locust.yaml"] = yaml_documents(*_locust_documents())
    # k8s/overlays/observability: Prometheus and the exporters on top of the dev overlay.
    files |= observability_files(env, [host.split(".")[0] for host in redis_hosts])
    return files


def _labels(component: str) -> dict:
    return {"app.kubernetes.io/name": "sessionproof", "app.kubernetes.io/component": component}


def _service(name: str, port: int, headless: bool = False, extra_ports: list[dict] | None = None) -> dict:
    spec: dict = {"selector": _labels(name), "ports": [{"name": name, "port": port, "targetPort": port}]}
    spec["ports"] += extra_ports or []
    if headless:
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True  # Sentinel must reach a node before it is ready
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": _labels(name)}, "spec": spec}


_PASSWORD_VOLUME = {
    "name": "redis-password",
    "secret": {"secretName": "sessionproof-redis", "items": [{"key": "password", "path": "redis_password"}]},
}
_PASSWORD_MOUNT = {"name": "redis-password", "mountPath": "/run/secrets", "readOnly": True}


def _data_statefulset(kind: str, port: int, catch_up: str = "") -> tuple[dict, dict]:
    probe = {
        "exec": {
            "command": [
                "sh",
                "-c",
                f'$(command -v redis-cli || command -v valkey-cli) -p {port} -a "$(cat {PASSWORD_FILE})" '
                "--no-auth-warning ping | grep -q PONG",
            ]
        },
        "periodSeconds": 2,
        "timeoutSeconds": 2,
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": kind, "labels": _labels(kind)},
        "spec": {
            "serviceName": kind,
            "replicas": COUNT,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": _labels(kind)},
            "template": {
                "metadata": {"labels": _labels(kind)},
                "spec": {
                    # The chaos pause sends SIGSTOP to the server, which must then not be PID 1.
                    "shareProcessNamespace": True,
                    "containers": [
                        {
                            "name": kind,
                            "image": REDIS_IMAGE,
                            "command": [
                                "sh",
                                "-c",
                                f'exec sh /sessionproof/container-entrypoint.sh {kind} "/config/{kind}-${{HOSTNAME##*-}}.conf" {catch_up}'.rstrip(),
                            ],
                            "ports": [{"name": kind, "containerPort": port}],
                            "readinessProbe": probe,
                            "livenessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 6},
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/config", "readOnly": True},
                                {"name": "config", "mountPath": "/sessionproof", "readOnly": True},
                                _PASSWORD_MOUNT,
                                {"name": "data", "mountPath": "/data"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "sessionproof-redis-config"}},
                        _PASSWORD_VOLUME,
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                }
            ],
        },
    }
    return _service(kind, port, headless=True), statefulset


def _app_documents(apps: int) -> list[dict]:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "labels": _labels("app")},
        "spec": {
            "replicas": apps,
            "selector": {"matchLabels": _labels("app")},
            "template": {
                "metadata": {
                    "labels": _labels("app"),
                    # Where a Prometheus that discovers pods (the observability overlay's, or a cluster's) scrapes.
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(APP_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "shareProcessNamespace": True,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [
                        {
                            "name": "app",
                            "image": APP_IMAGE,
                            "ports": [{"name": "http", "containerPort": APP_PORT}],
                            "envFrom": [{"configMapRef": {"name": "sessionproof-app-env"}}],
                            "env": [{"name": "INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": APP_PORT},
                                "periodSeconds": 2,
                                "failureThreshold": 2,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": APP_PORT},
                                "periodSeconds": 5,
                                "failureThreshold": 6,
                            },
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "256Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "volumeMounts": [_PASSWORD_MOUNT],
                        }
                    ],
                    "volumes": [_PASSWORD_VOLUME],
                },
            },
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "app", "labels": _labels("app")},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels("app")}},
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "app", "labels": _labels("app")},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
            "minReplicas": apps,
            "maxReplicas": apps * 2,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }
    return [_service("app", APP_PORT), deployment, pdb, hpa]


def _nginx_documents() -> list[dict]:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx", "labels": _labels("nginx")},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _labels("nginx")},
            "template": {
                "metadata": {"labels": _labels("nginx")},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": NGINX_IMAGE,
                            "command": [
                                "sh",
                                "-c",
                                "mkdir -p /tmp/nginx/run /tmp/nginx/nginx && exec nginx -c /etc/nginx/sessionproof.conf",
                            ],
                            "ports": [{"name": "nginx", "containerPort": NGINX_PORT}],
                            "readinessProbe": {"httpGet": {"path": "/ping", "port": NGINX_PORT}, "periodSeconds": 2},
                            "livenessProbe": {"tcpSocket": {"port": NGINX_PORT}, "periodSeconds": 5},
                            "volumeMounts": [
                                {
                                    "name": "config",
                                    "mountPath": "/etc/nginx/sessionproof.conf",
                                    "subPath": "nginx.conf",
                                    "readOnly": True,
                                }
                            ],
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": "sessionproof-nginx-config"}}],
                },
            },
        },
    }
    return [_service("nginx", NGINX_PORT), deployment]


def _locust_documents() -> list[dict]:
    # The image keeps the repository's layout under /sessionproof, where SCENARIO_DIR and RESULTS_DIR resolve
    # (loadtests/scenarios, results); the master writes each run folder into a volume claim mounted there:
    #   kubectl cp <locust-master pod>:/sessionproof/results ./results
    results_claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "locust-results", "labels": _labels("locust-master")},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    results_mount = {"name": "results", "mountPath": "/sessionproof/results"}

    def deployment(name: str, replicas: int, args: list[str], ports: list[dict]) -> dict:
        master = name == "locust-master"
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": _labels(name)},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": _labels(name)},
                "template": {
                    "metadata": {"labels": _labels(name)},
                    "spec": {
                        "containers": [
                            {
                                "name": "locust",
                                "image": LOADGEN_IMAGE,
                                "workingDir": "/sessionproof",
                                "command": ["locust", *args],
                                "env": [{"name": "STACK", "value": "k8s"}],
                                "ports": ports,
                                **({"volumeMounts": [results_mount]} if master else {}),
                            }
                        ],
                        **(
                            {"volumes": [{"name": "results", "persistentVolumeClaim": {"claimName": "locust-results"}}]}
                            if master
                            else {}
                        ),
                    },
                },
            },
        }

    master_ports = [{"name": "web", "containerPort": LOCUST_WEB_PORT}, {"name": "comm", "containerPort": 5557}]
    return [
        _service("locust-master", LOCUST_WEB_PORT, extra_ports=[{"name": "comm", "port": 5557, "targetPort": 5557}]),
        results_claim,
        deployment(
            "locust-master",
            1,
            ["--master", "--host", f"http://nginx:{NGINX_PORT}", "--web-host", "0.0.0.0", "--expect-workers", "2"],
            master_ports,
        ),
        deployment("locust-worker", 2, ["--worker", "--master-host", "locust-master"], []),
    ]
