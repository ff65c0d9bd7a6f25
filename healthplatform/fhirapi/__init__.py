"""The platform's FHIR R4 REST facade (JSON only).

Layout, meant to grow resource by resource:

- ``media``: the ``application/fhir+json`` renderer and parsers and the content negotiation (``_format``, Accept);
- ``outcome``: ``FHIRError`` and the ``OperationOutcome`` it becomes;
- ``exceptions``: the exception handler that turns *every* error of a FHIR view into an OperationOutcome;
- ``authentication`` / ``permissions``: who may call (source systems by HTTP Basic, staff sessions), pluggable;
- ``access_log``: one line per request on ``healthplatform.access`` (who, what path, status, time, counts);
- ``search``: parsing of FHIR search parameters (token, date, _count, lenient/strict handling);
- ``match``: the PDQm $match request (Parameters) and the 0..1 score reported for the MPI's raw score;
- ``resources/``: mapping between the stores' rows and FHIR resources, one module per resource type;
- ``views/``: thin views, one module per resource type or IHE transaction, calling the stores' selectors/services.
"""
