"""Prometheus's config for every runtime: what it scrapes, how often, and the `node` label each target gets.

One function, like the other configs (templates.py): the local runtime, compose and k8s pass
addresses; the jobs, labels and interval are the same everywhere, so a query (the reports',
the Grafana dashboard's) works on each.

Jobs:
  app             each replica's /metrics (prometheus-client, every gunicorn worker summed)
  redis           every Redis node through ONE exporter (its multi-target /scrape?target=...)
  redis-exporter  the exporter itself
  nginx           the nginx exporter, which reads stub_status
  prometheus      Prometheus itself
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from sessionproof import settings

JOBS = ("app", "redis", "redis-exporter", "nginx", "prometheus")
LOOKBACK_SCRAPES = 5  # as the local runtime's Prometheus (runtimes/local_files.py)

# Kubernetes: the app is one Deployment of N interchangeable pods, so its targets are discovered, not listed:
# every pod of this namespace with the app's component label and prometheus.io/scrape "true", at its
# prometheus.io/port and prometheus.io/path, named (`node`) by its pod name, which is also its INSTANCE_ID.
KUBERNETES_APP_PODS = {
    "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"own_namespace": True}}],
    "relabel_configs": [
        {
            "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            "regex": "app",
            "action": "keep",
        },
        {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "regex": "true", "action": "keep"},
        {
            "source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
            "regex": "([^:]+)(?::\\d+)?;(\\d+)",
            "replacement": "$1:$2",
            "target_label": "__address__",
        },
        {
            "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
            "regex": "(.+)",
            "target_label": "__metrics_path__",
        },
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "node"},
    ],
}


def scrape_interval_s(env: Mapping[str, str]) -> int:
    return settings.get_int("METRICS_SCRAPE_INTERVAL_S", env, minimum=1)


def lookback_delta(env: Mapping[str, str]) -> str:
    """Prometheus's --query.lookback-delta: a series that stopped does not live on for the default 5 minutes."""
    return f"{LOOKBACK_SCRAPES * scrape_interval_s(env)}s"


def exporter_timeout(env: Mapping[str, str]) -> str:
    """The exporters' own timeout towards Redis and nginx: inside Prometheus's scrape timeout (the interval)."""
    return f"{scrape_interval_s(env) * 0.8:g}s"


def _static(address: str, node: str) -> dict:
    return {"targets": [address], "labels": {"node": node}}


def prometheus_conf(
    env: Mapping[str, str],
    *,
    apps: list[tuple[str, str]] | None,
    redis: list[tuple[str, str]],
    redis_exporter: str,
    nginx_exporter: str,
    prometheus: str,
) -> str:
    """apps and redis: (node name, host:port), apps None for Kubernetes' pod discovery; the others: host:port."""
    interval = f"{scrape_interval_s(env)}s"
    app_targets = (
        {"static_configs": [_static(address, name) for name, address in apps]}
        if apps is not None
        else KUBERNETES_APP_PODS
    )
    config = {
        # The timeout equals the interval: a paused node is `up 0` within one interval, not ten.
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "app", **app_targets},
            {
                "job_name": "redis",
                "metrics_path": "/scrape",
                "static_configs": [_static(f"redis://{address}", name) for name, address in redis],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": redis_exporter},
                ],
            },
            {"job_name": "redis-exporter", "static_configs": [_static(redis_exporter, "redis-exporter")]},
            {"job_name": "nginx", "static_configs": [_static(nginx_exporter, "nginx")]},
            {"job_name": "prometheus", "static_configs": [_static(prometheus, "prometheus")]},
        ],
    }
    assert tuple(job["job_name"] for job in config["scrape_configs"]) == JOBS
    return yaml.safe_dump(config, sort_keys=False, width=120)
