"""gunicorn settings for an app replica; --bind comes from the runtime."""

import os
import shutil
import tempfile
from pathlib import Path

# prometheus-client's multiprocess mode: the folder must exist, empty, before the app package is imported
# (below, in this master; then in each worker, which inherits it). Samples of a previous run of this
# replica (a killed one leaves them) would otherwise be added to this one's.
_made_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _made_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sessionproof-metrics-")
else:
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

from sessionproof_app import settings  # noqa: E402

wsgi_app = "sessionproof_app.wsgi:app"
# gthread: the sync worker has no keep-alive, and nginx keeps upstream connections open.
worker_class = "gthread"
workers = settings.get_int("GUNICORN_WORKERS", minimum=1)
threads = settings.get_int("GUNICORN_THREADS", minimum=1)
# Must outlive nginx's upstream keepalive_timeout, or nginx may send a request
# on a connection gunicorn is closing (a 502 nobody asked for).
keepalive = settings.get_int("GUNICORN_KEEPALIVE_S", minimum=1)
timeout = 30
graceful_timeout = 10
accesslog = None  # the app logs one JSON line per request itself (REQUEST_LOG)
errorlog = "-"
loglevel = "info"
proc_name = f"sessionproof-{settings.get_str('INSTANCE_ID')}"
# gunicorn's runtime control socket (default ~/.gunicorn/gunicorn.ctl) is unused here: every local replica
# would share that one path, and the image's user has no home to make it in.
control_socket_disable = True


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _made_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
