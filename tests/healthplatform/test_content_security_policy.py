"""The site's Content-Security-Policy (issue 18): on every page and answer — the viewer, the admin, the FHIR API,
errors — scripts and styles come from our own origin only and nothing inline runs; the templates of ours hold
no inline script, style or event handler that the policy would block."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", ["/viewer/login/", "/admin/login/", "/fhir/metadata", "/healthz", "/no-such-page"])
def test_every_answer_carries_the_sites_policy(client, db, path):
    response = client.get(path)

    policy = {d.split()[0]: d.split()[1:] for d in response["Content-Security-Policy"].split("; ")}
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'self'"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_admin_pages_of_ours_need_no_inline_script_or_style(client, db):
    """The policy allows no inline script or style: a template that carried one would break under it."""
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=\"|\son[a-z]+=\"", re.IGNORECASE)
    templates = [p for p in ROOT.glob("*/**/templates/**/*.html") if ".venv" not in p.parts]
    assert templates
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in templates for m in inline.finditer(p.read_text())]
    assert found == []
