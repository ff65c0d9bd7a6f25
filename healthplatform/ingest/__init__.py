"""The write corridor: the one way every feed's resources reach the stores.

Every write — a FHIR request (create, update, conditional create/update, delete), a FHIR transaction or batch
Bundle, and the HL7 v2 messages mapped to FHIR resources — arrives here as ``Entry`` objects from its door and
passes the same steps (``apply``): the caller's authorisation (``healthplatform.access``: scopes, what it owns,
what it may refer to), validation with the R4 models, MPI resolution of the patient (``patients``), reference
rewriting and checking (``references``), and the writes to the archive (``ehr``) and the document store
(``emr``) in one database transaction. A door only translates: it builds entries and renders what comes back.
"""
