"""gunicorn entry point: `gunicorn -c services/app/gunicorn.conf.py sessionproof_app.wsgi:app`."""

from sessionproof_app import create_app

app = create_app()
