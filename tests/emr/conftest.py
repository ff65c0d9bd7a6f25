"""Document store fixtures: content goes to a temporary folder, never into the repository."""

from __future__ import annotations

import pytest

from tests.emr import factories


@pytest.fixture(autouse=True)
def document_folder(settings, tmp_path):
    """STORAGES["documents"] in a temporary folder (the setting change resets Django's storage cache)."""
    folder = tmp_path / "documents"
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(folder)}},
    }
    return folder


@pytest.fixture
def source(db):
    return factories.source_system()


@pytest.fixture
def patient(db):
    """An identity of a resident at the source's hospital."""
    return factories.identity("H-EMR", "MRN-1", resident_number=11)
