"""django-oauth-toolkit's bridge to oauthlib, reading a request's body only where OAuth 2.0 puts parameters.

DOT's ``OAuthLibCore.extract_body`` reads ``request.POST`` for every request it looks at — a bearer token's
check on a FHIR write or an HL7 v2 POST too. Django then parses the body by its Content-Type: a
``multipart/form-data`` without a boundary raised ``MultiPartParserError`` (a 500 on every POST with a bearer
token, issue 18), and a valid multipart body was consumed, so the view's ``request.body`` raised
``RawPostDataException`` (a 500 on ``/hl7v2``). OAuth 2.0 request parameters are form-encoded
(``application/x-www-form-urlencoded``: RFC 6749 §4.4.2 for the token request, RFC 6750 §2.2 for a token in
a body, which this server refuses anyway, ``COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT``); any other body is
not OAuth's to read, and is left to the view, which answers 415 or reads it as its own; nor is the body of a
request whose token is checked.
"""

from __future__ import annotations

from django.http.multipartparser import MultiPartParserError
from oauth2_provider.oauth2_backends import OAuthLibCore

# The bodies OAuth 2.0 parameters come in: form-encoded (RFC 6749), and multipart forms, which DOT took and
# clients built on form libraries send.
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class FormBodyOAuthLibCore(OAuthLibCore):
    """``OAuthLibCore`` that reads parameters from a form body of the token request only: never the body of
    a request whose bearer token it checks (that token comes from the Authorization header alone)."""

    def verify_request(self, request, scopes):
        # DOT keeps one instance per view class, shared by threads: the mark is the request's own.
        request.oauth_body_unread = True
        return super().verify_request(request, scopes)

    def extract_body(self, request):
        if getattr(request, "oauth_body_unread", False) or request.content_type not in FORMS:
            return []
        try:
            return super().extract_body(request)
        except (MultiPartParserError, LookupError, UnicodeDecodeError):
            return []  # a multipart without its boundary, an unknown charset: no parameters, invalid_request
