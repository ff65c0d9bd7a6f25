"""What a request's declared charset is taken to mean, decided where every request is made (issue 18, attack).

Django takes a Content-Type's ``charset`` as the request's encoding if Python has a codec of that name, and
decodes with it both the body *and the query string*, while it builds the request — before any middleware or
view, so that what went wrong there was gunicorn's bare 500 on every route:

- Python's codec registry holds codecs that are no character set (``base64``, ``rot13``, ``zlib``: bytes to
  bytes; ``undefined``, ``idna``, ``punycode``: ``UnicodeError`` whatever ``errors=`` says), and a name with a
  NUL in it makes the lookup itself raise ``ValueError``: any such request with a query string was a 500 from
  the viewer, the admin's login, every FHIR search and the HL7 v2 acknowledgements, and FHIR writes declaring
  one were 500s when their body was read. Such a charset is now treated as an unknown one, which Django and
  the FHIR parsers already read as UTF-8.
- A query string is UTF-8 whatever the body is (RFC 3986 §2.5; FHIR R4 http.html#mime-type): a UTF-16 body's
  charset turned a conditional update's ``?identifier=…`` into CJK noise, and the update was refused. The query
  is now always decoded as UTF-8; the body keeps its declared charset.

``healthplatform.wsgi`` and ``healthplatform.asgi`` build their requests with these classes (gunicorn and the
development server both load the WSGI one).
"""

from __future__ import annotations

import codecs

from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest, get_bytes_from_wsgi
from django.http import QueryDict
from django.utils.functional import cached_property
from django.utils.http import parse_header_parameters

# Text codecs of Python's registry that are no IANA character set, or that refuse bytes whatever ``errors`` is.
_NOT_CHARSETS = frozenset({"undefined", "idna", "punycode", "raw-unicode-escape", "unicode-escape", "charmap"})


def is_charset(name: str) -> bool:
    """Whether ``name`` is a character set Python can decode text in (not merely the name of some codec)."""
    try:
        codec = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a name with a NUL in it
        return False
    return codec._is_text_encoding and codec.name not in _NOT_CHARSETS


class _DeclaredCharset:
    """Django's reading of the Content-Type, keeping a ``charset`` only when it names a character set."""

    def _set_content_type_params(self, meta):
        self.content_type, self.content_params = parse_header_parameters(meta.get("CONTENT_TYPE", ""))
        charset = self.content_params.get("charset")
        if charset is None:
            return
        if is_charset(charset):
            self.encoding = charset
        else:
            del self.content_params["charset"]


class PlatformWSGIRequest(_DeclaredCharset, WSGIRequest):
    """A WSGI request whose query string is UTF-8 and whose body charset is a real one."""

    @cached_property
    def GET(self):
        return QueryDict(get_bytes_from_wsgi(self.environ, "QUERY_STRING", ""), encoding="utf-8")


class PlatformASGIRequest(_DeclaredCharset, ASGIRequest):
    """An ASGI request whose query string is UTF-8 and whose body charset is a real one."""

    @cached_property
    def GET(self):
        return QueryDict(self.META["QUERY_STRING"], encoding="utf-8")


class PlatformWSGIHandler(WSGIHandler):
    request_class = PlatformWSGIRequest


class PlatformASGIHandler(ASGIHandler):
    request_class = PlatformASGIRequest
