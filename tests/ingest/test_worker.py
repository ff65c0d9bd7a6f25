"""A worker can apply any Bundle the API can: a real Celery worker process, through a real broker, applies a
transaction with conditional Organization and Practitioner references — and never imports the FHIR API (the
worker's imports of ``healthplatform.fhirapi`` are made to fail, so the corridor cannot lean on the door)."""

from __future__ import annotations

import pytest

from ehr.models import Resource
from registry.codes import INSTITUTION_CODE_SYSTEM, PRACTITIONER_LICENCE_SYSTEM
from tests.celery_worker import celery_worker
from tests.fhirapi.client import register_feed
from tests.fhirapi.samples import patient_body, sample
from tests.registry.factories import PractitionerFactory

# Loaded by the worker's interpreter at start (site imports ``sitecustomize`` from PYTHONPATH): any import of
# the FHIR API package fails there.
BLOCKER = """
import sys

class _NoFHIRAPI:
    def find_spec(self, name, path=None, target=None):
        if name == "healthplatform.fhirapi" or name.startswith("healthplatform.fhirapi."):
            raise ImportError(f"{name}: the FHIR API is not to be imported in this worker")
        return None

sys.meta_path.insert(0, _NoFHIRAPI())
"""


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_a_worker_that_never_imports_the_fhir_api_applies_a_transaction_with_directory_references(tmp_path):
    feed = register_feed(facility="HOSP-W")
    institution = feed.source.institution
    doctor = PractitionerFactory(institution=institution)
    encounter = sample("Encounter", "urn:uuid:p", 1, hospital="hosp-w")
    encounter["serviceProvider"] = {
        "reference": f"Organization?identifier={INSTITUTION_CODE_SYSTEM}|{institution.code}"
    }
    encounter["participant"] = [
        {"individual": {"reference": f"Practitioner?identifier={PRACTITIONER_LICENCE_SYSTEM}|{doctor.licence_number}"}}
    ]
    observation = sample("Observation", "urn:uuid:p", 1, hospital="hosp-w")
    observation["encounter"] = {"reference": "urn:uuid:e"}
    system = "urn:platform:authority:HOSP-W"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:p",
                "resource": patient_body("W-1", system=system),
                "request": {"method": "PUT", "url": f"Patient?identifier={system}|W-1"},
            },
            {"fullUrl": "urn:uuid:e", "resource": encounter, "request": {"method": "POST", "url": "Encounter"}},
            {"resource": observation, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    answer, error = None, None
    # Celery's Django fixup runs the system checks when a worker starts, and the URL check imports every view
    # (which is how the old import-time registration of directory resolvers went unnoticed in workers).
    # Skipped here, so that nothing but the task itself could import the FHIR API.
    env = {"PYTHONPATH": str(site), "CELERY_SKIP_CHECKS": "1"}
    with celery_worker("redis", tmp_path, env=env) as (client, queue, output):
        try:
            task = client.send_task("healthplatform.ingest.bundle_apply", args=(feed.source.pk, bundle), queue=queue)
            answer = task.get(timeout=90)
        except Exception as exc:
            error = exc
    assert error is None, f"no answer from the worker ({error!r}); it said:\n{output}"
    assert answer["status"] == 200, answer
    assert [e["outcome"] for e in answer["entries"]] == ["created"] * 3, answer
    stored = Resource.objects.get(resource_type="Encounter", source=feed.source).body
    assert stored["serviceProvider"]["reference"] == f"Organization/{institution.code}"
    assert stored["participant"][0]["individual"]["reference"] == f"Practitioner/{doctor.pk}"
    obs = Resource.objects.get(resource_type="Observation", source=feed.source).body
    assert obs["encounter"]["reference"] == f"Encounter/{answer['entries'][1]['location'].split('/')[1]}"


def test_the_blocker_blocks(tmp_path):
    """The worker's import blocker really makes importing the FHIR API fail (else the test above proves nothing)."""
    import subprocess
    import sys

    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    probe = subprocess.run(
        [sys.executable, "-c", "import healthplatform.fhirapi.views"],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "not to be imported in this worker" in probe.stderr
