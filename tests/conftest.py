"""Shared test fixtures."""

import pytest


@pytest.fixture
def admin_client_zh(client, django_user_model):
    """A logged-in superuser's browser session (Chinese, the default language)."""
    user = django_user_model.objects.create_superuser("root", email="", password="a-long-test-password")
    client.force_login(user)
    return client
