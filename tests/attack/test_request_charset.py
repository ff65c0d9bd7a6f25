"""A request's declared charset is about its body, and only a real character set is taken as one (issue 18,
attack). Django decoded the query string with the body's charset: a Content-Type naming one of Python's
codecs that is no character set (``base64``, ``rot13``, ``zlib``, ``undefined``, ``idna``) made every route
with a query string a 500 (the viewer, the admin's login, FHIR searches, the HL7 v2 acknowledgements), and a
UTF-16 body turned a conditional update's criteria into CJK noise (a 405: "needs search criteria").

Django fails while it builds the request, before any middleware, so these requests go to the platform's WSGI
application itself (``healthplatform.wsgi.application``, what gunicorn and runserver serve), not through the
test client, which builds Django's own request."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from healthplatform.request_charset import PlatformWSGIHandler
from tests.fhirapi.client import basic, register_feed

ROOT = Path(__file__).resolve().parents[2]
FHIR_JSON = "application/fhir+json"
SYSTEM = "urn:platform:authority:HOSP-A"
NOT_CHARSETS = ["base64", "rot13", "zlib", "undefined", "idna", "punycode", "unicode_escape"]


def _patient(mrn: str) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": mrn}],
        "name": [{"text": "王小明"}],
        "gender": "male",
        "birthDate": "1985-03-12",
    }


def _send(method: str, url: str, *, body: bytes = b"", content_type: str = "", auth: dict | None = None):
    """One request to the platform's WSGI application: its status and body."""
    path, _, query = url.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        **{f"HTTP_{k.upper()}": v for k, v in (auth or {}).items()},
    }
    statuses = []
    # As Django's test client does: the test's transaction is not a connection to close between requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = PlatformWSGIHandler()(environ, lambda status, headers, exc_info=None: statuses.append(status))
        content = b"".join(result)
        result.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return int(statuses[0].split()[0]), content


@pytest.fixture
def feed(db):
    feed = register_feed()
    response = feed.client.post("/fhir/Patient", _patient("A-1"), content_type=FHIR_JSON)
    assert response.status_code == 201, response.content
    feed.patient_id = response.json()["id"]
    feed.auth = basic(feed.source.client_id, feed.secret)
    return feed


@pytest.mark.parametrize("charset", NOT_CHARSETS)
@pytest.mark.parametrize(
    "path",
    ["/fhir/Patient?identifier=urn:x|1", "/viewer/search/?name=x", "/admin/login/?next=/admin/", "/hl7v2/acks?x=1"],
)
def test_a_codec_that_is_no_charset_never_makes_a_route_with_a_query_a_500(feed, path, charset):
    auth = feed.auth if path.startswith("/fhir/") else None
    status, content = _send("GET", path, content_type=f"text/plain; charset={charset}", auth=auth)
    assert status < 500, content


@pytest.mark.parametrize("charset", NOT_CHARSETS)
@pytest.mark.parametrize(
    "path", ["/fhir/Patient", "/fhir/Patient?identifier=urn:platform:authority:HOSP-A|A-1", "/fhir/"]
)
def test_a_fhir_write_declaring_a_codec_that_is_no_charset_is_read_as_utf8(feed, path, charset):
    body = _patient("A-1") if path != "/fhir/" else {"resourceType": "Bundle", "type": "batch", "entry": []}
    method = "PUT" if "?" in path else "POST"
    content_type = f"{FHIR_JSON}; charset={charset}"
    status, content = _send(method, path, body=json.dumps(body).encode(), content_type=content_type, auth=feed.auth)
    assert status in (200, 201), content


@pytest.mark.parametrize("charset", ["utf-16", "utf-32", "utf-16-le"])
def test_a_conditional_update_in_utf16_reads_its_criteria_as_utf8_and_updates_the_match(feed, charset):
    body = {**_patient("A-1"), "name": [{"text": "王小明明"}]}
    status, content = _send(
        "PUT",
        f"/fhir/Patient?identifier={SYSTEM}|A-1",
        body=json.dumps(body, ensure_ascii=False).encode(charset),
        content_type=f"{FHIR_JSON}; charset={charset}",
        auth=feed.auth,
    )
    assert status == 200, content
    assert json.loads(content)["id"] == feed.patient_id
    assert json.loads(content)["name"] == [{"text": "王小明明"}]


def test_a_search_declaring_utf16_reads_its_query_as_utf8(feed):
    url = f"/fhir/Patient?identifier={SYSTEM}|A-1"
    status, content = _send("GET", url, content_type=f"{FHIR_JSON}; charset=utf-16", auth=feed.auth)
    assert status == 200, content
    found = [e["resource"]["id"] for e in json.loads(content)["entry"]]
    assert found == [e["resource"]["id"] for e in feed.client.get(url).json()["entry"]] and len(found) == 1


def test_a_charset_with_a_nul_in_its_name_is_read_as_utf8(feed):
    content_type = f"{FHIR_JSON}; charset=utf-8\x00"
    status, content = _send("GET", "/fhir/Patient?name=x", content_type=content_type, auth=feed.auth)
    assert status == 200, content


def test_the_wsgi_and_asgi_entry_points_build_the_platforms_requests(tmp_path):
    script = (
        "import healthplatform.wsgi as w, healthplatform.asgi as a; "
        "print(type(w.application).__name__, type(a.application).__name__)"
    )
    env = {"PATH": "/usr/bin:/bin", "PLATFORM_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["PlatformWSGIHandler", "PlatformASGIHandler"]
