"""Request body limits: ``MAX_CONTENT_LENGTH`` for every endpoint, except views that accept files
(documents to seal or verify) and name their own, larger setting with ``@body_limit``."""
from __future__ import annotations

from flask import Flask, Request, current_app


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


class LimitedRequest(Request):
    """Flask's request, whose body limit is the matched view's (``limit_for``) from the first read on:
    Flask-WTF's CSRF check reads a form before any of our hooks run."""

    @property
    def max_content_length(self) -> int | None:
        if self._max_content_length is not None:
            return self._max_content_length
        if not current_app:
            return super().max_content_length
        return limit_for(current_app, self.endpoint)

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value
