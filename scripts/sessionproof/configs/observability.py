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


def _static(address: str, node: str) -> dict:
    return {"targets": [address], "labels": {"node": node}}


def prometheus_conf(
    env: Mapping[str, str],
    *,
    apps: list[tuple[str, str]],
    redis: list[tuple[str, str]],
    redis_exporter: str,
    nginx_exporter: str,
    prometheus: str,
) -> str:
    """apps and redis: (node name, host:port); the others: host:port."""
    interval = f"{settings.get_int('METRICS_SCRAPE_INTERVAL_S', env, minimum=1)}s"
    config = {
        # The timeout equals the interval: a paused node is `up 0` within one interval, not ten.
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "app", "static_configs": [_static(address, name) for name, address in apps]},
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
    return yaml.safe_dump(config, sort_keys=False, width=120)
