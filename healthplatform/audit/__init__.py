"""The audit of reads: who read which resident's record, whatever door they came through.

Today every read is a line on the ``healthplatform.access`` log (who, what kind of record, which id — never
names or identity numbers): the FHIR API's per request (``fhirapi.access_log``), the admin's per page
(``healthplatform.audit.admin``: a store's admin page says what it shows, the audit logs its reads). An audit
store keyed by the person (IHE BALP) comes with the clinician viewer.
"""
