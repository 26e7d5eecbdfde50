"""WSGI entry point for external servers (e.g. ``granian --interface wsgi idp.wsgi:app``); ``idp serve``
builds the app in each worker itself (``idp.serve``)."""
from . import create_app, start_logout_worker
from .dbread import hold_when_serving

app = create_app()
hold_when_serving(app)
start_logout_worker(app)
