"""WSGI entry point for external servers: ``gunicorn idp.wsgi:app``."""
from . import create_app, start_logout_worker

app = create_app()
start_logout_worker(app)
