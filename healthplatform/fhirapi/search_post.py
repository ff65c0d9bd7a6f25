"""``POST [type]/_search``: a search whose parameters are sent as a form body, answered as the GET search it is.

R4 http.html#search: "Servers SHALL support both GET and POST based searches", the POST to ``[type]/_search``
with ``application/x-www-form-urlencoded`` parameters in the body, "combined with any parameters in the URL";
the result is the same as the GET's (search.html#Introduction). So the request is turned into that GET before it
is routed — ``GET [type]?<URL parameters>&<body parameters>`` — and every type's search view answers it with its
own parameters, scopes (a read: ``system/[type].read``), cursor links and audit of reads, with nothing of its own
to forget. The self and next links are those of the GET (search.html#conformance: a client follows them), and the
audit's request line is that GET, the search as made; the access log keeps the method and path received.

A ``_search`` is never a create: a body of any other media type is refused (415), and any other method (405),
after the caller is authenticated (``FHIRView.initial`` raises ``request.fhir_refused``), so the refusal is
attributed like every other answer.
"""

from __future__ import annotations

import re

from django.http import QueryDict

from healthplatform.fhirapi.outcome import FHIRError

FORM = "application/x-www-form-urlencoded"
# A type's name (R4: an uppercase letter, then letters); only under the FHIR base.
_SEARCH = re.compile(r"^/fhir/[A-Z][A-Za-z]{0,63}/_search$")


class SearchByPostMiddleware:
    """Rewrites ``POST /fhir/[type]/_search`` into ``GET /fhir/[type]?…`` before routing (see the module)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _SEARCH.match(request.path_info):
            _as_get_search(request)
        return self.get_response(request)


def _as_get_search(request) -> None:
    if request.method != "POST":
        request.fhir_refused = FHIRError.one(
            405, "not-supported", "a search by _search is POST [type]/_search; a GET search is GET [type]?…"
        )
        return
    # Reading the body applies Django's limits (size, DATA_UPLOAD_MAX_NUMBER_FIELDS): a 400 before any view.
    if request.body and request.content_type != FORM:
        request.fhir_refused = FHIRError.one(
            415, "not-supported", f"the parameters of POST [type]/_search are sent as {FORM}, not as a resource"
        )
        return
    parameters = request.GET.copy()
    for name, values in QueryDict(request.body, encoding=request.encoding).lists():
        for value in values:
            parameters.appendlist(name, value)
    request.fhir_received = (request.method, request.path)
    request.method = "GET"
    request.GET = parameters
    request.META["QUERY_STRING"] = parameters.urlencode()
    request.path = request.path.removesuffix("/_search")
    request.path_info = request.path_info.removesuffix("/_search")
