"""Fixtures shared by the seal tests (``tests.seals.pdfs``), with the ``ca`` of the test module.

``seal`` here is a seal *credential* to seal PDFs with directly; modules that need the registry's
``Seal`` row import ``seal`` from ``tests.seals.registry_support``, which overrides this one there."""
from __future__ import annotations

import pytest

from tests.seals.pdfs import make_seal, make_timestamper


@pytest.fixture
def seal(app, ca):
    return make_seal(app, ca)


@pytest.fixture
def tsa(app, ca):
    return make_timestamper(app, ca)
