"""Request body limits: ``MAX_CONTENT_LENGTH`` for every endpoint, except views that accept files
(documents to seal or verify) and name their own, larger setting with ``@body_limit``."""
from __future__ import annotations

from flask import Flask


def body_limit(setting: str):
    """Let the decorated view accept bodies up to ``app.config[setting]`` bytes."""
    def decorate(view):
        view.body_limit_setting = setting
        return view
    return decorate


def limit_for(app: Flask, endpoint: str | None) -> int:
    view = app.view_functions.get(endpoint) if endpoint else None
    setting = getattr(view, "body_limit_setting", None)
    return int(app.config[setting] if setting else app.config["MAX_CONTENT_LENGTH"])
