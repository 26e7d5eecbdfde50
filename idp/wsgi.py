"""WSGI entry point for external servers: ``gunicorn idp.wsgi:app``."""
from . import create_app

app = create_app()
