"""gunicorn settings for an app replica; --bind comes from the runtime."""

from sessionproof_app import settings

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
accesslog = None
errorlog = "-"
loglevel = "info"
proc_name = f"sessionproof-{settings.get_str('INSTANCE_ID')}"
