"""Shared test fixtures."""

import pytest


@pytest.fixture
def admin_client_zh(client, django_user_model):
    """A logged-in superuser's browser session (Chinese, the default language)."""
    user = django_user_model.objects.create_superuser("root", email="", password="a-long-test-password")
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Source-system secrets are hashed with a deliberately slow hasher; tests that register feeds by the
    dozen use Django's fast test hasher instead (the standard Django testing advice). Production settings
    are unchanged."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _process_memory_forgotten():
    """Each test starts without what earlier tests left in this process: resolved directory references, code
    maps and the viewer's list of local code systems (a test's rolled-back registry, loaded in bulk without save
    signals, must not answer the next test's references, translate its codes nor tell its local codes from the
    standard ones) and the cache (failed authentications from 127.0.0.1 add up across tests to a 429)."""
    from django.core.cache import cache

    from healthplatform.alerts.evaluate import ruleset_forget
    from healthplatform.viewer.facts import local_code_systems_forget
    from registry.selectors import _RESOLVED as _resolved
    from registry.selectors import _SOURCES
    from registry.terminology import code_maps_forget, drug_terminology_forget

    _resolved.clear()
    _SOURCES.clear()
    drug_terminology_forget()
    ruleset_forget()
    code_maps_forget()
    local_code_systems_forget()
    cache.clear()


@pytest.fixture
def documents_folder(settings, tmp_path):
    """The document store's content in a temporary folder."""
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }


@pytest.fixture
def world(db, documents_folder):
    """Hospital A and hospital B, each with its feed, its patient, a resource of every type and a document."""
    from tests.fhirapi.tenants import world_build

    return world_build()
