"""The CapabilityStatement (``GET /fhir/metadata``), generated from what the code really serves.

The archive's types and their search parameters come from ``ehr.indexing.SPECS`` (the same table the
searches run on); other types register what they serve in ``EXTRA_RESOURCES`` (the directory, documents).
"""

from __future__ import annotations

from django.conf import settings

from ehr.indexing import CLINICAL_TYPES, SPECS
from ehr.selectors import search_parameters
from healthplatform.audit.balp import PATIENT_QUERY, PATIENT_READ

FHIR_VERSION = "4.0.1"
_RW = ["read", "vread", "update", "delete", "history-instance", "create", "search-type"]


def _params(params: dict[str, str]) -> list[dict]:
    return [{"name": name, "type": kind} for name, kind in sorted(params.items())]


def _served(resource_type: str, interactions: tuple[str, ...], params: dict[str, str], **extra) -> dict:
    return {
        "type": resource_type,
        "interaction": [{"code": c} for c in interactions],
        "searchParam": _params(params),
        **extra,
    }


_DIRECTORY = ("read", "vread", "update", "create", "search-type")
# The document store (MHD) and the registry's directory (mCSD), served by their own views.
EXTRA_RESOURCES: list[dict] = [
    _served(
        "DocumentReference",
        ("read", "vread", "history-instance", "create", "search-type"),
        {"patient": "reference", "status": "token", "type": "token", "category": "token", "date": "date"},
        supportedProfile=[
            "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference"
        ],
    ),
    _served("Binary", ("read",), {}),
    # The audit of reads (IHE BALP), read by the platform's staff only: a source system gets 403.
    _served(
        "AuditEvent",
        ("read", "search-type"),
        {"patient": "reference"},
        supportedProfile=[PATIENT_READ, PATIENT_QUERY],
        documentation="Who read a resident's record (every read through the API, the viewer and the admin): "
        "the platform's staff only; source systems are refused (403) whatever their scopes.",
    ),
    # The alerts raised on the orders feeds send (healthplatform.alerts): read-only, the ordering institution's.
    _served(
        "DetectedIssue",
        ("read", "search-type"),
        {"patient": "reference", "code": "token", "_id": "token"},
        documentation="Alerts (duplicate test, drug–allergy, duplicate medication) raised on the orders a feed sent, "
        "readable by the ordering institution's source systems and staff; withdrawn ones are cancelled.",
    ),
    _served(
        "Organization",
        _DIRECTORY,
        {"identifier": "token", "name": "string", "active": "token", "type": "token"},
        conditionalCreate=True,
    ),
    _served(
        "Practitioner",
        _DIRECTORY,
        {"identifier": "token", "name": "string", "active": "token", "organization": "reference"},
        conditionalCreate=True,
    ),
    _served(
        "Location",
        _DIRECTORY,
        {"identifier": "token", "name": "string", "organization": "reference", "status": "token"},
        conditionalCreate=True,
    ),
]


def _archive_resource(resource_type: str) -> dict:
    spec = SPECS[resource_type]
    return {
        "type": resource_type,
        "interaction": [{"code": code} for code in _RW],
        "versioning": "versioned",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": True,
        "conditionalUpdate": True,
        "conditionalDelete": "not-supported",
        "searchInclude": [f"{resource_type}:{p}" for p in sorted(spec.references)],
        "searchRevInclude": sorted(
            f"{other}:{p}" for other, s in SPECS.items() if other != "Patient" for p in s.references
        ),
        "searchParam": _params(search_parameters(resource_type)),
    }


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def smart_configuration(token_url: str) -> dict:
    """``.well-known/smart-configuration`` (SMART App Launch 2.x conformance.html, as its Backend Services example
    has it): only what is true. The token endpoint takes client credentials, the secret by HTTP Basic or in the
    form (RFC 6749 §2.3.1: ``client-confidential-symmetric``; no signed JWT assertion, so no ``private_key_jwt``
    nor ``client-confidential-asymmetric``); scopes are SMART v1's ``system/<type>.<read|write|*>``
    (``permission-v1``). No authorization endpoint, PKCE or launch capability: there is no user-facing launch.
    """
    return {
        "token_endpoint": token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": sorted(settings.FHIR_SCOPES),
        "capabilities": ["client-confidential-symmetric", "permission-v1"],
    }


def capability_statement(base_url: str, token_url: str) -> dict:
    patient = {
        "type": "Patient",
        "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
        "interaction": [{"code": c} for c in ("read", "vread", "update", "history-instance", "create", "search-type")],
        "versioning": "versioned",
        "readHistory": True,
        "updateCreate": False,
        "searchParam": _params(
            {
                "identifier": "token",
                "family": "string",
                "given": "string",
                "name": "string",
                "birthdate": "date",
                "gender": "token",
            }
        ),
        "operation": [
            {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"},
            {"name": "ihe-pix", "definition": "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix"},
            {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
        ],
    }
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": getattr(settings, "PLATFORM_RELEASE_DATE", "2026-11-25"),
        "publisher": "Regional health information platform",
        "kind": "instance",
        "implementation": {"description": "Regional health information platform FHIR API", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    # SMART App Launch 2.x conformance.html: the SMART-on-FHIR service and the token endpoint in
                    # the oauth-uris extension, so a client finds it from /metadata too (no authorize: there is
                    # no user-facing launch, only client credentials).
                    "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url}]}],
                    "cors": False,
                    "service": [
                        {"coding": [{"system": _SECURITY_SERVICE, "code": "SMART-on-FHIR"}]},
                        {"coding": [{"system": _SECURITY_SERVICE, "code": "OAuth"}]},
                    ],
                    "description": f"OAuth2 client credentials (token endpoint {token_url}), scopes "
                    "system/*.read, system/*.write and per resource type; HTTP Basic for legacy feeds.",
                },
                "resource": [
                    patient,
                    *(_archive_resource(t) for t in CLINICAL_TYPES),
                    *EXTRA_RESOURCES,
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
