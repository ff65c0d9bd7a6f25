"""CDS Hooks 2.0 (https://cds-hooks.hl7.org/2.0/): the alerts for hospital systems, mounted at ``/cds-services``.

- ``hooks``: the services (``patient-view``, ``order-select``, ``order-sign``), what a request must be, and the
  answer (cards from ``healthplatform.alerts.evaluate``);
- ``patients``: who ``context.patientId`` names (a platform Patient id, the caller's own MRN, a national
  document, the prefetched Patient's identifiers);
- ``cards``: a finding as a Card (summary, indicator, source, override reasons, a suggestion to remove the order,
  a link to the viewer's patient page);
- ``feedback``: what a feedback request must be, recorded through ``alert_override``;
- ``views``: HTTP (the FHIR API's authentication: OAuth2 bearer tokens, HTTP Basic, staff sessions).

Errors are HTTP status codes with a JSON body ``{"error": "<what is wrong>"}`` (the specification defines only
the codes): 400 for a malformed request, 401 without credentials, 403 when a token's scopes do not cover what
the rules read, 404 for an unknown service.
"""
