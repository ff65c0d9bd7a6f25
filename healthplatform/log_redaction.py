"""No patient data in any log line: the filter every handler of the platform and of its servers passes.

Patient data reaches log lines by four roads, each closed here in general rather than per call site:

- **Exception text.** A database error's message carries the statement's data: PostgreSQL's ``DETAIL: Key
  (identifier)=(445102199008130367) already exists`` or a ``CONTEXT:`` line quoting a COPY row; a ``ValueError``
  names the value it refused. A record's exception (``logger.exception``, Django's "Internal Server Error",
  Celery's task failures, gunicorn's "Error handling request") is rewritten as its traceback's frames (file,
  line, function: our code, never data) and each exception's class; a database error keeps what an operator
  needs and no value: its SQLSTATE, constraint, table and column (psycopg's ``Diagnostic``).
- **Exceptions as arguments** (``log.error("... %s", error)``) and the text of the record's own exception inside
  its message (Celery formats ``%(exc)s`` into the message): replaced by the same summary.
- **Query strings.** Search parameters are patient data (``Patient?identifier=…|445102…``, PIXm's
  ``sourceIdentifier``, a viewer URL's ``next=``); any URL or request line in a message loses its query string.
  The access log formats of gunicorn (``deploy/gunicorn.conf.py``) and of the development server leave it out
  in the first place; this is the net under them.
- **Paths** are what the client typed (``/fhir/Patient/445102199008130367``, a name where an id goes): in a
  path, the segment where an id goes (after a resource type) unless it is one of the platform's own ids (a UUID,
  a row number), percent-encoded and non-ASCII runs, resident identity numbers (GB 11643: 17 digits and a check
  character) and mainland mobile numbers (11 digits from 13–19) are masked. Those two shapes are masked in
  the rest of the message too, where no id, count or digest of ours has them.

Names, free text and bodies are not recognisable by shape: they stay out because no logger of ours logs them
(loggers log ids and counts) and the roads above are closed. Levels below INFO are not covered: third-party
DEBUG output (oauthlib's) echoes requests.

This module imports nothing of Django or of the platform: gunicorn's master loads it with its config, before
any application.
"""

from __future__ import annotations

import logging
import re
import traceback

MASK = "***"
# A URL's query string, in a request line ("GET /fhir/Patient?name=… HTTP/1.1"), a logged URL or a path.
_QUERY = re.compile(r"(?P<path>(?:https?://[^\s/\"'?]+)?/[^\s\"'?]*)\?[^\s\"']*")
_PATH = re.compile(r"(?:https?://[^\s/\"'?]+)?/[^\s\"']*")
# Percent-encoded octets, non-ASCII characters, and the escapes Django's request log writes them as.
_ENCODED_OR_WIDE = re.compile(
    r"(?:%[0-9A-Fa-f]{2}|[^\x00-\x7f]|\\(?:x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}))+"
)
_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[- ]?)?1[3-9][0-9]{9}(?![0-9A-Za-z])")
# What psycopg's Diagnostic says that names no value (PostgreSQL protocol, ErrorResponse fields C, n, t, c, s).
_DIAGNOSTIC_FIELDS = ("sqlstate", "constraint_name", "table_name", "column_name", "schema_name")


def _diagnostic(error: BaseException) -> str:
    for candidate in (error, error.__cause__):
        diag = getattr(candidate, "diag", None)
        if diag is None:
            continue
        parts = [f"{name}={value}" for name in _DIAGNOSTIC_FIELDS if (value := getattr(diag, name, None))]
        return " ".join(parts)
    sqlstate = getattr(error, "sqlstate", None) or getattr(error.__cause__, "sqlstate", None)
    return f"sqlstate={sqlstate}" if sqlstate else ""


def exception_summary(error: BaseException) -> str:
    """The class of an exception and of those it was raised from or during, with a database error's SQLSTATE,
    constraint, table and column — never its message, which may quote the data."""
    names, seen, current = [], set(), error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        name = (
            kind.__qualname__
            if kind.__module__ in ("builtins", "__main__")
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        diagnostic = _diagnostic(current)
        names.append(f"{name} ({diagnostic})" if diagnostic else name)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return " <- ".join(names)


def exception_text(error: BaseException) -> str:
    """A traceback without a message or a source line: where it happened, and what (``exception_summary``)."""
    frames = traceback.extract_tb(error.__traceback__)
    lines = ["Traceback (frames only; the message is not logged, it may carry patient data):"]
    lines += [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames]
    lines.append(exception_summary(error))
    return "\n".join(lines)


# The segment after a FHIR resource type (``/fhir/Patient/<id>``, ``/fhir/Observation/<id>/_history``) or the
# viewer's ``/patient/``: where an id goes, a client types an MRN or a name as often as an id. Kept when it is
# one of the platform's own ids (a UUID, a row number); operations (``$match``) and ``_history`` are not ids.
_ID_SEGMENT = re.compile(r"(?<=/)(?P<kind>[A-Z][A-Za-z]+|patient)/(?P<id>[^/\s\"'$_][^/\s\"']*)")
_OWN_ID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}|[0-9]{1,12}")


def _id_masked(match: re.Match) -> str:
    kept = _OWN_ID.fullmatch(match.group("id"))
    return match.group(0) if kept else f"{match.group('kind')}/{MASK}"


def _path_masked(match: re.Match) -> str:
    return _ID_SEGMENT.sub(_id_masked, _ENCODED_OR_WIDE.sub(MASK, match.group(0)))


def text_redacted(text: str) -> str:
    """A log line without query strings, without client-typed runs in paths, without identity or mobile numbers."""
    text = _QUERY.sub(lambda m: m.group("path") + "?" + MASK, text)
    text = _PATH.sub(_path_masked, text)
    text = _RESIDENT_ID.sub(MASK, text)
    return _MOBILE.sub(MASK, text)


class PatientDataFilter(logging.Filter):
    """Rewrites every record it sees (see the module's docstring); drops none. Put on a handler, it covers every
    logger whose records reach that handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(exception_summary(a) if isinstance(a, BaseException) else a for a in args)
        elif isinstance(args, dict) and any(isinstance(v, BaseException) for v in args.values()):
            # Only then a copy: gunicorn's access atoms are a mapping of its own that answers any header key.
            record.args = {k: exception_summary(v) if isinstance(v, BaseException) else v for k, v in args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a call with arguments its format does not take: keep the format alone
            message = str(record.msg)
        if error is not None:
            summary = exception_summary(error)
            for form in {str(error), repr(error)} - {""}:
                message = message.replace(form, summary)
            record.exc_text = exception_text(error)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = text_redacted(record.exc_text)
        record.msg, record.args = text_redacted(message), ()
        return True
