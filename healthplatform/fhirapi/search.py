"""FHIR search parameters (R4 search.html): tokens, dates, ``_count``, and lenient or strict handling."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.http import QueryDict

from healthplatform.fhirapi.outcome import FHIRError, Issue, invalid_parameter

# Result parameters and format parameters every search understands.
COMMON_PARAMETERS = frozenset({"_count", "_format"})
DEFAULT_COUNT = 20
MAX_COUNT = 100
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def strict_handling(request) -> bool:
    """Whether an unsupported search parameter is refused (400) — the default here — or ignored, which only
    ``Prefer: handling=lenient`` asks for (R4 search.html#errors lets a server choose). Ignoring is never the
    default because it widens a result: ``Observation?patient.identifier=…&code=…`` would answer every
    patient's results for that code."""
    prefer = request.headers.get("Prefer", "")
    return not any(p.strip().replace(" ", "").lower() == "handling=lenient" for p in re.split(r"[,;]", prefer))


@dataclass
class SearchParameters:
    """The parameters of one search: the ones applied, and the ones ignored under lenient handling."""

    values: dict[str, str]
    ignored: list[str]

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def search_parameters(query: QueryDict, supported: frozenset[str], *, strict: bool) -> SearchParameters:
    """Splits the query into supported parameters (one value each) and the rest.

    A supported parameter given twice (FHIR: both must hold) is refused rather
    than half applied. An unknown one, or one with a modifier we do not
    implement (``family:exact``), is ignored unless ``strict``; then 400.
    """
    known = supported | COMMON_PARAMETERS
    values, ignored, unknown = {}, [], []
    for name in query:
        if name not in known:
            (unknown if strict else ignored).append(name)
            continue
        given = [v for v in query.getlist(name) if v.strip()]
        if not given:
            # "Empty parameters are ignored" (R4 search.html#errors): ``family=`` asks for nothing.
            continue
        if len(given) > 1:
            raise invalid_parameter(name, "given more than once; this server takes one value", code="not-supported")
        values[name] = given[0]
    if unknown:
        raise FHIRError(
            400,
            [Issue("not-supported", f"{name}: unknown or unsupported search parameter", (name,)) for name in unknown],
        )
    return SearchParameters(values, ignored)


def token(name: str, value: str) -> tuple[str | None, str]:
    """A token search value: ``system|code`` -> (system, code); ``code`` -> (None, code) (any system);
    ``|code`` -> ("", code) (no system)."""
    system, sep, code = value.partition("|")
    if not sep:
        system, code = None, value
    code = code.replace("\\|", "|").replace("\\,", ",").strip()
    if not code:
        raise invalid_parameter(name, "needs a value (system|value or value); a system alone is not searched")
    return (system.strip() if system is not None else None), code


def date_eq(name: str, value: str) -> dt.date:
    """A date search value with the ``eq`` prefix or none, at day precision."""
    text = value.strip()
    prefix = text[:2]
    if prefix.isalpha():
        if prefix != "eq":
            raise invalid_parameter(name, f"the prefix {prefix!r} is not supported (only eq)", code="not-supported")
        text = text[2:]
    if not _DATE_RE.match(text):
        raise invalid_parameter(name, "expected a date YYYY-MM-DD (optionally prefixed eq)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise invalid_parameter(name, "not a calendar date") from None


def whole_number(value: str) -> int | None:
    """A decimal number of ASCII digits, or None. ``str.isdigit`` is not enough: it accepts "²" and other
    digits ``int`` refuses, and a number of thousands of digits is refused by ``int`` too (and would
    overflow a database integer); 18 digits fit in a bigint."""
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        return None
    return int(text)


def count(value: str | None, *, name: str = "_count") -> int:
    """``_count``: at most MAX_COUNT (a server may return fewer than asked, R4 search.html#count)."""
    if value is None:
        return DEFAULT_COUNT
    number = whole_number(value)
    if number is None:
        raise invalid_parameter(name, "expected a non-negative integer")
    return min(number, MAX_COUNT)


def summary_count(params: SearchParameters, *, strict: bool) -> bool:
    """``_summary``: whether only the total is asked (``count``). ``false`` asks for the whole resources, which a
    search answers anyway; other summaries are not served: 400 under strict handling, otherwise ignored and
    dropped from the applied parameters, so that the self link does not claim them."""
    summary = params.get("_summary")
    if summary not in (None, "count", "false"):
        if strict:
            raise invalid_parameter("_summary", "only count or false is supported", code="not-supported")
        params.values.pop("_summary")
        return False
    return summary == "count"
