"""Importing the package has no side effect on SQLAlchemy's mappers.

SQLAlchemy configures every mapper the first time any one is inspected (``inspect(Model).attrs``, a
query built from ``Model.column`` with a relationship, ...). If a module does that at import, the
mappers are configured before the models imported after it exist, and a relationship naming one of
them by string fails, or not, depending on which module happened to be imported first (it broke a
full test run once: ``sessions/service.py`` asked the mapper for its columns at import)."""
from __future__ import annotations

import subprocess
import sys

_CHECK = """
import importlib, pkgutil
import idp
for m in pkgutil.walk_packages(idp.__path__, "idp."):
    if m.name == "idp.wsgi":  # the WSGI entry point builds the app, which needs keys
        continue
    importlib.import_module(m.name)
from idp.db import db
mappers = list(db.Model.registry.mappers)
print(len(mappers), sorted(m.class_.__name__ for m in mappers if m.configured))
"""


def test_importing_every_module_configures_no_mapper():
    r = subprocess.run([sys.executable, "-c", _CHECK], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    count, configured = r.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) >= 20  # the models were imported
    assert configured == "[]", f"configured at import: {configured}"
