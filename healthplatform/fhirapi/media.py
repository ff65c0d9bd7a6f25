"""FHIR JSON on the wire: the renderer, the parsers, and content negotiation by ``_format`` and ``Accept``.

Only JSON is served. A client that asks for XML (``_format=xml``,
``Accept: application/fhir+xml``) gets 406 rather than JSON it cannot read
(FHIR R4 http.html#mime-type: a server that does not support the requested
format returns 406).
"""

from __future__ import annotations

import io
import re

import orjson
from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.renderers import JSONRenderer

from healthplatform.ingest.entries import resource_too_large
from healthplatform.ingest.validation import UNSTORABLE_TEXT, unstorable_outside_entries

FHIR_JSON = "application/fhir+json"
# What every response says it is (FHIR R4 http.html#version-parameter).
FHIR_JSON_CONTENT_TYPE = f"{FHIR_JSON}; fhirVersion=4.0"

# ``_format`` values meaning JSON (FHIR R4 http.html#mime-type), and Accept media ranges we can satisfy.
# ``application/json+fhir`` is the DSTU2 name that older clients still send.
_FORMAT_JSON = frozenset({"json", "application/json", FHIR_JSON, "application/json+fhir"})
_ACCEPT_JSON = frozenset({FHIR_JSON, "application/json", "application/json+fhir", "application/*", "*/*"})


class FHIRJSONRenderer(JSONRenderer):
    """Renders resources as FHIR JSON (UTF-8, non-ASCII characters kept: Chinese names stay readable)."""

    media_type = FHIR_JSON
    format = "json"
    ensure_ascii = False


# A number of 19 digits or more where a JSON value starts (after ':', '[' or ',', or at the start): maybe an
# integer beyond 64 bits, which orjson reads as a float (rounded) where json keeps it exact; such a body takes
# the exact path. Digits inside strings mostly do not match (urn:oid:2.25.<a 39-digit arc> in every hospital's
# identifier systems); the few that do ("ID:1234567890123456789") only take the slower path. The start of the
# text is matched on its own: an alternation with ``^`` made every search 2.4 times slower (441 against 182 µs
# on a 38 kB Bundle: more than parsing it).
_LONG_NUMBER = re.compile(rb"[:\[,][ \t\r\n]*-?[0-9]{19}")
_LONG_NUMBER_FIRST = re.compile(rb"[ \t\r\n]*-?[0-9]{19}")


def may_hold_long_integer(raw: bytes) -> bool:
    """Whether a JSON text may hold an integer orjson would not read exactly (never wrong the other way)."""
    return _LONG_NUMBER_FIRST.match(raw) is not None or _LONG_NUMBER.search(raw) is not None


# The escapes in a UTF-8 body that may decode to what no FHIR string holds (U+0000, a lone surrogate: JSON
# carries both only escaped; healthplatform.ingest.validation.unstorable_at): a body without any is
# not walked.
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


# The deepest nesting of objects and arrays a body may have. FHIR's deepest real structures (a Bundle entry's
# QuestionnaireResponse with nested items, extensions in extensions) stay well under it; past about 1,000 the
# parsers' and the corridor's recursion failed with a RecursionError (a 500).
MAX_DEPTH = 100


def _too_deep(data) -> bool:
    """Whether objects and arrays nest in ``data`` deeper than MAX_DEPTH: a walk level by level (no recursion),
    without a tuple per node — 190 µs on a 23 kB Bundle of 60 entries, where a stack of (node, depth) took 545
    (orjson parses it in 95)."""
    level = [data] if isinstance(data, (dict, list)) else []
    for _ in range(MAX_DEPTH):
        if not level:
            return False
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                kind = type(child)
                if kind is dict or kind is list:
                    below.append(child)
        level = below
    return bool(level)


def _checked(raw: bytes | None, data):
    """``data`` parsed from ``raw``, refused when a string or name of it holds U+0000 or a lone surrogate (JSON
    carries them only escaped, so a body without such an escape is not walked) or when it nests deeper than
    MAX_DEPTH (a body with fewer brackets cannot). ``raw`` None: a body in another charset, whose bytes say
    neither, is walked."""
    if raw is None or _UNSTORABLE_ESCAPE.search(raw):
        where = unstorable_outside_entries(data)
        if where is not None:
            raise ParseError(f"{where}: {UNSTORABLE_TEXT}")
    if (raw is None or raw.count(b"{") + raw.count(b"[") > MAX_DEPTH) and _too_deep(data):
        raise ParseError(f"the body nests objects and arrays deeper than {MAX_DEPTH} levels")
    return data


def _json_parsed(parse):
    """DRF's JSON parse, with a body nested past Python's recursion limit refused as a 400 like any other."""
    try:
        return parse()
    except RecursionError:
        raise ParseError(f"the body nests objects and arrays deeper than {MAX_DEPTH} levels") from None


def _resource_type_of(parser_context: dict) -> str | None:
    """The resource type a request's body is (the view's, as its scope check reads it); None for a Bundle
    posted to the base, or a view that takes no resource."""
    view = parser_context.get("view")
    kind = getattr(view, "fhir_resource_type", None)
    if callable(kind):
        kind = kind(parser_context.get("request"), **(parser_context.get("kwargs") or {}))
    return kind if isinstance(kind, str) else None


def _size_checked(parser_context: dict | None, size: int | None = None) -> None:
    """A single resource larger than its type's limit (``ingest.entries.max_resource_bytes``) is refused by its
    declared length, before its body is read or parsed: parsing a 60 MB Observation grew the worker by ~470 MB.
    (A Bundle is bounded by the body limit here and per entry by the corridor once parsed; a body without a
    Content-Length is checked by the ``size`` it has once read, still before it is parsed.)"""
    context = parser_context or {}
    resource_type = _resource_type_of(context)
    request = context.get("request")
    if resource_type is None or request is None:
        return
    try:
        length = size if size is not None else int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    too_large = resource_too_large(resource_type, length, expression=resource_type)
    if too_large is not None:
        raise too_large


class PlainJSONParser(JSONParser):
    """``application/json`` bodies (DRF's parser), with U+0000 refused as in FHIR JSON."""

    def parse(self, stream, media_type=None, parser_context=None):
        _size_checked(parser_context)
        raw = stream.read()
        _size_checked(parser_context, len(raw))
        return _checked(
            raw, _json_parsed(lambda: super(PlainJSONParser, self).parse(io.BytesIO(raw), media_type, parser_context))
        )


class FHIRJSONParser(JSONParser):
    """Parses ``application/fhir+json`` request bodies: orjson (less than half of json's CPU on a
    hospital's Bundle, measured), and DRF's own parser for a body orjson refuses (so that malformed JSON
    is answered with the same message as before) or might read differently (another charset, an integer
    beyond 64 bits)."""

    media_type = FHIR_JSON

    def parse(self, stream, media_type=None, parser_context=None):
        _size_checked(parser_context)
        if get_encoding(parser_context or {}).lower().replace("-", "") != "utf8":
            # FHIR is UTF-8; orjson reads nothing else
            raw = stream.read()
            _size_checked(parser_context, len(raw))
            return _checked(
                None,
                _json_parsed(lambda: super(FHIRJSONParser, self).parse(io.BytesIO(raw), media_type, parser_context)),
            )
        raw = stream.read()
        _size_checked(parser_context, len(raw))
        if not may_hold_long_integer(raw):
            try:
                return _checked(raw, orjson.loads(raw))
            except orjson.JSONDecodeError:
                pass
        return _checked(
            raw, _json_parsed(lambda: super(FHIRJSONParser, self).parse(io.BytesIO(raw), media_type, parser_context))
        )


class LegacyFHIRJSONParser(FHIRJSONParser):
    media_type = "application/json+fhir"


PARSERS = [FHIRJSONParser, PlainJSONParser, LegacyFHIRJSONParser]


def _parameters(params: list[str]) -> dict[str, str]:
    """A media type's parameters by lower-cased name (``fhirVersion=4.0``, ``q=0.5``), values unquoted."""
    named = (p.partition("=") for p in params)
    return {name.strip().lower(): value.strip().strip('"') for name, _, value in named}


def _other_fhir_version(params: dict[str, str]) -> str | None:
    """The FHIR version a media type asks for when it is not ours: R4 is ``fhirVersion=4.0`` (R4
    http.html#version-parameter; a patch level such as 4.0.1 names the same version)."""
    version = params.get("fhirversion")
    if version is None or version == "4.0" or version.startswith("4.0."):
        return None
    return version


def _accepts_json(accept: str) -> bool:
    """Whether a media range of ``accept`` is FHIR JSON of R4: a range asking for another ``fhirVersion`` is
    not (the answer would be R4 whatever its media type says)."""
    for media_range in accept.split(","):
        media_type, *params = (p.strip() for p in media_range.split(";"))
        named = _parameters(params)
        try:
            acceptable = float(named.get("q", "1")) > 0
        except ValueError:
            acceptable = True
        if acceptable and media_type.lower() in _ACCEPT_JSON and _other_fhir_version(named) is None:
            return True
    return False


def _version_refused(where: str, value: str) -> NotAcceptable | None:
    """The 406 of a ``_format`` or ``Accept`` whose only FHIR JSON asks for another FHIR version, naming it."""
    for media_range in value.split(","):
        version = _other_fhir_version(_parameters(media_range.split(";")[1:]))
        if version is not None:
            return NotAcceptable(
                f"{where}: fhirVersion={version[:10]!r} is not served; this server is FHIR R4 (fhirVersion=4.0)"
            )
    return None


class FHIRContentNegotiation(BaseContentNegotiation):
    """``_format`` wins over ``Accept``; no Accept header means JSON."""

    def select_parser(self, request, parsers):
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        fmt = request.query_params.get("_format")
        if fmt is not None:
            # "application/fhir json" is how a "+" arrives when a client did not URL-encode it.
            media_type = fmt.split(";", 1)[0]
            if media_type.strip().lower().replace(" ", "+") in _FORMAT_JSON:
                refused = _version_refused("_format", fmt)
                if refused is None:
                    return renderer, renderer.media_type
                raise refused
            raise NotAcceptable(f"_format: {fmt[:40]!r} is not served; this server answers in FHIR JSON only")
        accept = request.META.get("HTTP_ACCEPT", "").strip()
        if not accept or _accepts_json(accept):
            return renderer, renderer.media_type
        raise _version_refused("Accept", accept) or NotAcceptable(
            "Accept: this server answers in FHIR JSON only (application/fhir+json)"
        )
