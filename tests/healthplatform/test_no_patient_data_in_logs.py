"""No patient data in any log (issue 18): a real gunicorn, started with the platform's own configuration
(deploy/gunicorn.conf.py) and the platform's logging, is sent a synthetic resident's name, identity number,
mobile number and MRN by every route — FHIR reads, searches, conditional create and update, PIXm and PDQm,
transaction and batch Bundles, HL7 v2 over HTTP, the viewer — with good and bad input, errors that reach the
database among them; then every line gunicorn and the platform wrote (access log, error log, the platform's
loggers) is searched for those values, raw, URL-encoded and JSON-escaped. The development server
(``manage.py runserver``, what ``dev.py run`` starts) is held to the same for its request lines, and a database
error carrying the data in its DETAIL is logged by the platform's own handler without it."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import requests
from django.conf import global_settings
from django.db import IntegrityError, connection, transaction

from mpi.identifiers import id_check_char
from tests.celery_worker import test_database_url
from tests.fhirapi.client import register_feed

ROOT = Path(__file__).resolve().parents[2]
NAME = "闻人测悦"
RESIDENT_ID = "44010619880307512" + id_check_char("44010619880307512")
PHONE = "13987654321"
MRN = "MRNQ7Z3K9"
SECRETS = (NAME, RESIDENT_ID, PHONE, MRN)
RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
MRN_SYSTEM = "urn:platform:authority:HOSP-A"
FHIR = "application/fhir+json"


def _forms(value: str) -> set[str]:
    """The ways a value shows up in a line: as it is, URL-encoded (either case, + or %20), JSON-escaped."""
    forms = {value, quote(value), quote_plus(value), quote(value).lower(), json.dumps(value)[1:-1]}
    forms.add(json.dumps(value, ensure_ascii=True)[1:-1].upper().replace("\\U", "\\u"))
    return forms


def leaks(text: str) -> list[str]:
    """The lines of ``text`` that carry a synthetic value in any form, with the value."""
    found = []
    for line in text.splitlines():
        for value in SECRETS:
            if any(form in line for form in _forms(value)):
                found.append(f"{value}: {line}")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(command: list[str], tmp_path: Path, port: int) -> tuple[subprocess.Popen, Path]:
    """A server process writing its stdout and stderr to one file; returned once ``/healthz`` answers."""
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "PLATFORM_DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "INFO",  # the production level (deploy/README.md)
        "DEBUG": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_BROKER_URL", None)  # processing runs in the web process, and logs there
    log = tmp_path / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code in (200, 503):
                return process, log
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the server did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _patient(**extra) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [
            {"system": MRN_SYSTEM, "value": MRN},
            {"system": RESIDENT_ID_SYSTEM, "value": RESIDENT_ID},
        ],
        "name": [{"text": NAME}],
        "telecom": [{"system": "phone", "value": PHONE}],
        "gender": "female",
        "birthDate": "1988-03-07",
        **extra,
    }


def _adt(control_id: str, birth: str = "19880307") -> bytes:
    return (
        f"MSH|^~\\&|HIS-A|HOSP-A|HIP|REGION|20261203101500||ADT^A01^ADT_A01|{control_id}|P|2.5.1\r"
        "EVN|A01|20261203101500\r"
        f"PID|1||{MRN}^^^HOSP-A^MR~{RESIDENT_ID}^^^CHN^NNCHN||{NAME}||{birth}|F|||||{PHONE}\r"
        "PV1|1|I|W1^1^1\r"
    ).encode()


def _every_route(base: str, auth: tuple[str, str]) -> list[int]:
    """Sends the synthetic resident by every route, good input and bad; returns the statuses."""
    s = requests.Session()
    s.auth = auth
    s.headers["Accept"] = FHIR
    fhir = f"{base}/fhir"
    sent = []

    def go(method: str, url: str, **kwargs) -> requests.Response:
        response = s.request(method, url, timeout=30, **kwargs)
        sent.append(response.status_code)
        return response

    body = json.dumps(_patient(), ensure_ascii=False).encode()
    created = go("POST", f"{fhir}/Patient", data=body, headers={"Content-Type": FHIR})
    assert created.status_code == 201, created.text
    patient_id = created.json()["id"]
    # Conditional create and update, searches, PIXm and PDQm: the data in the query string and headers.
    go(
        "POST",
        f"{fhir}/Patient",
        data=body,
        headers={"Content-Type": FHIR, "If-None-Exist": f"identifier={MRN_SYSTEM}|{MRN}"},
    )
    go(
        "PUT",
        f"{fhir}/Patient",
        params={"identifier": f"{MRN_SYSTEM}|{MRN}"},
        data=body,
        headers={"Content-Type": FHIR},
    )
    go("GET", f"{fhir}/Patient", params={"identifier": f"{RESIDENT_ID_SYSTEM}|{RESIDENT_ID}"})
    go("GET", f"{fhir}/Patient", params={"name": NAME, "phone": PHONE, "birthdate": "1988-03-07"})
    go("GET", f"{fhir}/Patient", params={"family": NAME[:2], "given": NAME[2:], "telecom": PHONE})
    go("GET", f"{fhir}/Patient/$ihe-pix", params={"sourceIdentifier": f"{MRN_SYSTEM}|{MRN}"})
    go("GET", f"{fhir}/Patient/$ihe-pix", params={"sourceIdentifier": f"urn:unknown|{RESIDENT_ID}"})
    match = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": _patient()}]}
    go("POST", f"{fhir}/Patient/$match", json=match, headers={"Content-Type": FHIR})
    go("GET", f"{fhir}/Observation", params={"patient.identifier": f"{RESIDENT_ID_SYSTEM}|{RESIDENT_ID}"})
    # Bad input: unknown parameters, a bad date, a NUL, malformed JSON, the data where an id goes.
    go("GET", f"{fhir}/Patient", params={"birthdate": PHONE, "nickname": NAME})
    go("GET", f"{fhir}/Patient", params={"identifier": f"{RESIDENT_ID}\x00"})
    go("GET", f"{fhir}/Patient/{RESIDENT_ID}")
    go("GET", f"{fhir}/Patient/{MRN}")  # an MRN where an id goes: no shape of its own (attack finding)
    go("GET", f"{fhir}/Observation/{MRN}/_history")
    go("GET", f"{fhir}/Patient/{quote(NAME)}")
    go("GET", f"{fhir}/{quote(NAME)}?phone={PHONE}")
    go("POST", f"{fhir}/Patient", data=body[:-5], headers={"Content-Type": FHIR})
    go("POST", f"{fhir}/Patient", json=_patient(name=[{"text": NAME + "\x00"}]), headers={"Content-Type": FHIR})
    go("POST", f"{fhir}/Patient", json=_patient(birthDate=PHONE), headers={"Content-Type": FHIR})
    go("POST", f"{fhir}/Patient", json=_patient(gender=NAME), headers={"Content-Type": FHIR})
    long_mrn = _patient(identifier=[{"system": MRN_SYSTEM, "value": (MRN + RESIDENT_ID) * 40}])
    go("POST", f"{fhir}/Patient", json=long_mrn, headers={"Content-Type": FHIR})
    go("PUT", f"{fhir}/Patient/{patient_id}", json=_patient(id=patient_id), headers={"Content-Type": FHIR})
    go("PUT", f"{fhir}/Patient/{patient_id}", json=_patient(id=RESIDENT_ID), headers={"Content-Type": FHIR})
    # Bundles: a transaction with a conditional create, a batch with a bad entry beside a good one.
    entry = {
        "resource": _patient(),
        "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={MRN_SYSTEM}|{MRN}"},
    }
    bad = {"resource": _patient(birthDate=NAME), "request": {"method": "POST", "url": "Patient"}}
    search = {"request": {"method": "GET", "url": f"Patient?identifier={RESIDENT_ID_SYSTEM}|{RESIDENT_ID}&name={NAME}"}}
    for kind, entries in (("transaction", [entry]), ("transaction", [entry, bad]), ("batch", [entry, bad, search])):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
        go("POST", f"{fhir}/", json=bundle, headers={"Content-Type": FHIR})
    # HL7 v2 over HTTP: a good ADT, the same control id again, one the processing parks, one it cannot read.
    er7 = {"Content-Type": "x-application/hl7-v2+er7", "Accept": "*/*"}
    go("POST", f"{base}/hl7v2", data=_adt("LOG-1"), headers=er7)
    go("POST", f"{base}/hl7v2", data=_adt("LOG-1"), headers=er7)
    go("POST", f"{base}/hl7v2", data=_adt("LOG-2", birth=PHONE), headers=er7)
    go("POST", f"{base}/hl7v2", data=_adt("LOG-3").replace(b"PID|1|", b"PID|1|\x00" + PHONE.encode()), headers=er7)
    go("POST", f"{base}/hl7v2", data=NAME.encode() + PHONE.encode(), headers=er7)
    # The viewer and the admin, not logged in: the data in the URL, a login attempt, a Referer.
    browser = requests.Session()
    viewer = f"{base}/viewer/search/?name={NAME}&id_number={RESIDENT_ID}"
    sent.append(browser.get(viewer, timeout=30, headers={"Referer": quote(viewer, safe=":/?&=")}).status_code)
    sent.append(
        browser.post(f"{base}/viewer/login/", data={"username": PHONE, "password": NAME}, timeout=30).status_code
    )
    sent.append(browser.get(f"{base}/admin/mpi/person/?q={RESIDENT_ID}", timeout=30).status_code)
    # Wrong credentials carrying the data.
    sent.append(
        requests.get(f"{fhir}/Patient?name={NAME}", auth=(PHONE.encode(), NAME.encode()), timeout=30).status_code
    )
    return sent


@pytest.mark.django_db(transaction=True)
def test_gunicorn_and_the_platform_log_no_patient_data_whatever_is_sent(tmp_path, settings):
    # The server checks the feed's secret with the platform's own hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--workers", "1", "healthplatform.wsgi"]  # fmt: skip
    process, log = _serve(command, tmp_path, port)
    try:
        statuses = _every_route(f"http://127.0.0.1:{port}", (feed.source.client_id, feed.secret))
    finally:
        _stop(process)

    text = log.read_text()
    assert 201 in statuses and 400 in statuses and 404 in statuses and 405 not in statuses
    assert "healthplatform.access" in text and "gunicorn" in text  # both logs were written
    assert leaks(text) == []
    assert '"GET /fhir/Patient HTTP/1.1" 200' in text  # an access line: the path, without the query


@pytest.mark.django_db(transaction=True)
def test_the_development_server_logs_requests_without_their_query_string(tmp_path):
    port = _free_port()
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    process, log = _serve(command, tmp_path, port)
    try:
        requests.get(f"http://127.0.0.1:{port}/fhir/Patient?identifier={RESIDENT_ID}&name={NAME}", timeout=30)
        requests.get(f"http://127.0.0.1:{port}/viewer/search/?phone={PHONE}", timeout=30)
        requests.get(f"http://127.0.0.1:{port}/fhir/Patient/{RESIDENT_ID}", timeout=30)
    finally:
        _stop(process)

    text = log.read_text()
    assert '"GET /fhir/Patient?' in text  # the request lines are there, without what followed the "?"
    assert leaks(text) == []


@pytest.fixture
def platform_log():
    """What the platform's own console handler (settings.LOGGING) writes, captured from its stream."""
    handler = next(h for h in logging.getLogger().handlers if h.filters and type(h) is logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.mark.django_db(transaction=True)
def test_a_database_error_is_logged_with_its_class_and_constraint_never_its_data(platform_log):
    """A unique violation whose DETAIL names the key's value, logged by ``logger.exception`` as Django's
    "Internal Server Error" and our own handlers do, and formatted into a message as Celery does."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE log_probe (id_number varchar(18) CONSTRAINT log_probe_key UNIQUE, note text)")
    try:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO log_probe VALUES (%s, %s)", [RESIDENT_ID, NAME])
            with pytest.raises(IntegrityError) as caught, transaction.atomic():
                cursor.execute("INSERT INTO log_probe VALUES (%s, %s)", [RESIDENT_ID, f"{NAME} {PHONE}"])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE log_probe")
    error = caught.value
    assert RESIDENT_ID in str(error) or connection.vendor == "sqlite"  # what the database said carries the data

    log = logging.getLogger("healthplatform.probe")
    try:
        raise RuntimeError(f"processing {NAME} failed") from error
    except RuntimeError as wrapped:
        log.exception("writing failed")
        log.error("Task x[1] raised unexpected: %s", repr(wrapped), exc_info=(type(wrapped), wrapped, None))
        log.error("writing failed: %s (%r)", error, error)

    text = platform_log.getvalue()
    assert "IntegrityError" in text and "writing failed" in text
    if connection.vendor == "postgresql":
        assert "sqlstate=23505" in text and "constraint_name=log_probe_key" in text and "table_name=log_probe" in text
    assert leaks(text) == []
