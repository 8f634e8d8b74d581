"""Static checks of the compose and k8s runtimes, which cannot run here (no container engine): `make validate`.

1. drift: compose/ and k8s/ hold exactly what `make generate` makes from services/ and the settings;
2. the compose file validates against the compose specification (compose-spec);
3. each k8s overlay renders (`kubectl kustomize`) and every object validates against the
   Kubernetes schemas, offline and strict (kubernetes-validate);
4. parity: the Redis, Sentinel and nginx settings, the app's settings, ports and probes are the
   same in the local runtime, compose and k8s;
5. observability (validate_observability.py): the Grafana dashboard and provisioning, the compose
   `observability` profile and the k8s observability overlay, the Prometheus configs (promtool) and
   their parity with the local one.

Exit status 0 when all hold, 1 with every problem listed otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from sessionproof import REPO_ROOT, settings
from sessionproof.configs.container_files import read_env_file
from sessionproof.configs.generate import RUNTIME_SET_SETTINGS, drift
from sessionproof.runtimes import validate_observability as observability
from sessionproof.runtimes.local import LocalRuntime
from sessionproof.topology import APP_PORT, NGINX_PORT, StackConfig

K8S_VERSION = "1.33.0"
OVERLAYS = ("dev", "production", "observability", "valkey")

# Lines that legitimately differ per runtime: addresses, folders, the password, announcing.
_REDIS_LOCAL = re.compile(r"^(bind|port|dir|requirepass|masterauth|replicaof|replica-announce-ip) ")
_SENTINEL_LOCAL = re.compile(
    r"^(bind|port|dir|requirepass|sentinel (sentinel-pass|auth-pass|resolve-hostnames|announce-hostnames|announce-ip)) "
)
_NGINX_LOCAL = re.compile(r"^(pid|error_log|access_log|listen|\w+_temp_path|proxy_next_upstream_tries) ")


def _directives(text: str, local_only: re.Pattern) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or local_only.match(line):
            continue
        line = re.sub(r"^(sentinel monitor \S+) \S+ \d+ (\d+)$", r"\1 <master> \2", line)
        line = re.sub(r"^server \S+:\d+ ", "server <app> ", line)
        if line.startswith("server <app> ") and line in lines:
            continue  # one upstream line per replica locally, one Service in k8s: compare the settings
        lines.append(line)
    return lines


def local_configs() -> dict[str, str]:
    """The local runtime's configs, rendered with the default settings into a temporary folder."""
    with tempfile.TemporaryDirectory() as state_dir:
        runtime = LocalRuntime(StackConfig.from_env({"STATE_DIR": state_dir}))
        runtime.render()
        root = Path(state_dir)
        return {
            "redis-master": (root / "redis-1" / "redis.conf").read_text(),
            "redis-replica": (root / "redis-2" / "redis.conf").read_text(),
            "sentinel": (root / "sentinel-1" / "sentinel.conf").read_text(),
            "nginx": (root / "nginx" / "nginx.conf").read_text(),
            "app_env": "\n".join(f"{k}={v}" for k, v in _resolved_app_settings(runtime).items()),
            "prometheus": runtime.files.prometheus_text(),
        }


def _resolved_app_settings(runtime: LocalRuntime) -> dict[str, str]:
    """What a local app replica runs with: its environment, then each setting's default."""
    env = runtime.files.app_environment(runtime.config.app_nodes[0])
    names = [s.name for s in settings.SETTINGS if s.scope == "app"]
    names += ["GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_KEEPALIVE_S"]
    return {name: settings.get_str(name, env) for name in names}


def _runtime_configs(root: Path) -> dict[str, dict[str, str]]:
    def read(relative: str) -> str:
        path = root / relative
        return path.read_text() if path.exists() else ""

    return {
        "compose": {
            "redis-master": read("compose/config/redis-1.conf"),
            "redis-replica": read("compose/config/redis-2.conf"),
            "sentinel": read("compose/config/sentinel-1.conf"),
            "nginx": read("compose/config/nginx.conf"),
            "app_env": read("compose/app.env"),
        },
        "k8s": {
            "redis-master": read("k8s/base/config/redis-0.conf"),
            "redis-replica": read("k8s/base/config/redis-1.conf"),
            "sentinel": read("k8s/base/config/sentinel-0.conf"),
            "nginx": read("k8s/base/config/nginx.conf"),
            "app_env": read("k8s/base/config/app.env"),
        },
    }


def _env_pairs(text: str) -> dict[str, str]:
    pairs = read_env_file(text)
    # Per runtime by nature: the replica's name, where Sentinels and the password are.
    for name in RUNTIME_SET_SETTINGS:
        pairs.pop(name, None)
    return pairs


def parity_problems(root: Path = REPO_ROOT, local: dict[str, str] | None = None) -> list[str]:
    local = local_configs() if local is None else local
    problems = []
    for runtime, found in _runtime_configs(root).items():
        for key, pattern in (
            ("redis-master", _REDIS_LOCAL),
            ("redis-replica", _REDIS_LOCAL),
            ("sentinel", _SENTINEL_LOCAL),
            ("nginx", _NGINX_LOCAL),
        ):
            want, got = _directives(local[key], pattern), _directives(found[key], pattern)
            if want != got:
                missing = [line for line in want if line not in got]
                extra = [line for line in got if line not in want]
                problems.append(f"parity: {runtime} {key} differs from local: missing {missing}, extra {extra}")
        local_env, runtime_env = _env_pairs(local["app_env"]), _env_pairs(found["app_env"])
        differing = sorted(k for k in local_env.keys() | runtime_env.keys() if local_env.get(k) != runtime_env.get(k))
        if differing:
            problems.append(f"parity: {runtime} app settings differ from local: {', '.join(differing)}")
    return problems


def compose_problems(root: Path = REPO_ROOT) -> list[str]:
    from compose_spec import PyCompose

    path = root / "compose" / "docker-compose.yml"
    # As compose reads it with no variable set: `${REDIS_IMAGE:-redis:7.0}` is redis:7.0 (the schema has no
    # notion of interpolation and would refuse the `$`).
    text = re.sub(r"\$\{\w+:-([^}]*)\}", lambda match: match[1], path.read_text())
    try:
        compose = PyCompose.from_yaml(text)
        compose.validate()
        compose.to_spec()
    except (OSError, ValueError) as error:
        return [f"compose: {path.relative_to(root)} does not validate against the compose specification: {error}"]
    document = yaml.safe_load(text)
    services = document.get("services", {})
    problems = []
    for name in ("redis-1", "redis-2", "redis-3", "sentinel-1", "sentinel-2", "sentinel-3", "app-1", "app-2", "nginx"):
        if name not in services:
            problems.append(f"compose: service {name} is missing")
    if f"127.0.0.1:{NGINX_PORT}:{NGINX_PORT}" not in services.get("nginx", {}).get("ports", []):
        problems.append(f"compose: nginx must publish {NGINX_PORT}")
    for name, service in services.items():
        if "password" in str(service.get("environment", {})).lower():
            problems.append(f"compose: {name} has a password inline; use the redis_password secret")
    return problems + observability.compose_problems(services, root)


def k8s_objects(overlay_dir: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl is not installed: it renders the kustomizations (`kubectl kustomize`)")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(overlay_dir)], capture_output=True, text=True, timeout=60, check=False
    )
    if rendered.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay_dir} failed: {rendered.stderr.strip()[:500]}")
    return [d for d in yaml.safe_load_all(rendered.stdout) if d]


def k8s_problems(root: Path = REPO_ROOT) -> list[str]:
    import kubernetes_validate

    problems = []
    for overlay in OVERLAYS:
        try:
            objects = k8s_objects(root / "k8s" / "overlays" / overlay)
        except RuntimeError as error:
            problems.append(f"k8s {overlay}: {error}")
            continue
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                problems.append(f"k8s {overlay}: {obj['kind']}/{obj['metadata']['name']}: {error.message}")
        problems += [f"k8s {overlay}: {p}" for p in _k8s_shape_problems(objects)]
        if overlay == "observability":
            problems += [f"k8s {overlay}: {p}" for p in observability.k8s_problems(objects)]
        if overlay == "valkey":
            problems += [f"k8s {overlay}: {p}" for p in _valkey_problems(objects)]
    return problems


def _valkey_problems(objects: list[dict]) -> list[str]:
    """STORE_ENGINE=valkey on k8s: every data node and Sentinel container runs a Valkey image."""
    problems = []
    for obj in objects:
        if obj["kind"] == "StatefulSet" and obj["metadata"]["name"] in ("redis", "sentinel"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                if not str(container.get("image", "")).startswith("valkey/valkey:"):
                    problems.append(f"StatefulSet/{obj['metadata']['name']} runs {container.get('image')}, not Valkey")
    return problems


def _k8s_shape_problems(objects: list[dict]) -> list[str]:
    by_kind_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    problems = []
    for needed in (("StatefulSet", "redis"), ("StatefulSet", "sentinel"), ("Deployment", "app"),
                   ("PodDisruptionBudget", "app"), ("HorizontalPodAutoscaler", "app"), ("Deployment", "nginx"),
                   ("Service", "nginx"), ("Deployment", "locust-master"), ("Deployment", "locust-worker")):  # fmt: skip
        if needed not in by_kind_name:
            problems.append(f"{needed[0]}/{needed[1]} is missing")
    app = by_kind_name.get(("Deployment", "app"))
    if app:
        container = app["spec"]["template"]["spec"]["containers"][0]
        if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            problems.append("the app's readinessProbe must be GET /readyz")
        if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            problems.append("the app's livenessProbe must be GET /healthz (it never touches Redis)")
        if container["ports"][0]["containerPort"] != APP_PORT:
            problems.append(f"the app must listen on {APP_PORT}")
        problems += observability.app_annotation_problems(app)
    secrets = [o for o in objects if o["kind"] == "Secret"]
    for secret in secrets:
        if secret["metadata"]["name"].startswith("sessionproof-redis") and "password" not in secret.get("data", {}):
            problems.append("the sessionproof-redis Secret needs a password key")
    return problems


def dockerfile_problems(root: Path = REPO_ROOT) -> list[str]:
    """What can be checked of the app image without building it: stages, user, healthcheck, sources."""
    path = root / "services" / "app" / "Dockerfile"
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    problems = []
    if sum(line.startswith("FROM ") for line in lines) < 2:
        problems.append("Dockerfile: needs a build stage and a runtime stage (multi-stage)")
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    if not users or users[-1] in ("root", "0"):
        problems.append("Dockerfile: the final stage must run as a non-root USER")
    if not any(line.startswith("HEALTHCHECK ") for line in lines):
        problems.append("Dockerfile: needs a HEALTHCHECK")
    if not any(line.startswith("CMD ") and "gunicorn" in line for line in lines):
        problems.append("Dockerfile: CMD must start gunicorn")
    for line in lines:
        parts = line.split()
        if parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            for source in parts[1:-1]:
                if not (root / source).exists():
                    problems.append(f"Dockerfile: COPY source {source} does not exist (build context: the repository)")
    return problems


def all_problems(root: Path = REPO_ROOT, notes: list[str] | None = None) -> list[str]:
    """Every problem; notes (when given) collects what could not be checked here, such as promtool's absence."""
    local = local_configs()
    return [
        *[f"drift: {d}" for d in drift(root)],
        *compose_problems(root),
        *k8s_problems(root),
        *parity_problems(root, local),
        *dockerfile_problems(root),
        *observability.prometheus_problems(local["prometheus"], root, notes),
        *observability.dashboard_problems(root, shutil.which("promtool")),
        *observability.grafana_problems(root),
    ]


def main() -> int:
    notes: list[str] = []
    problems = all_problems(notes=notes)
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"validate: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        "validate: generated files match services/ and the settings; compose matches the compose specification; "
        f"k8s overlays {', '.join(OVERLAYS)} render and match the Kubernetes {K8S_VERSION} schemas; "
        "Redis, Sentinel, nginx and app settings are the same in local, compose and k8s; "
        "the Grafana dashboard queries only exported metrics through the provisioned datasource; "
        "the Prometheus configs pass promtool and scrape the same jobs at the same interval as local"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
