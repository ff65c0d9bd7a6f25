"""The registry as an mCSD-style directory: Organization, Practitioner and Location (filled in by issue 4)."""

from __future__ import annotations

urlpatterns: list = []
