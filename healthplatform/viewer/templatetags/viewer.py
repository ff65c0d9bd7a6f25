"""Template filters of the viewer."""

import html

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext

register = template.Library()


@register.filter
def get(mapping, key):
    """``mapping[key]``, or "" (dictionary look-up by a variable key)."""
    try:
        return mapping.get(key, "")
    except AttributeError:
        return ""


@register.simple_tag
def fact_display(fact):
    """A fact's display, with the sender's local word after it when a standard display leads (the fact page;
    the patient page's rows write the same through ``fact_rows``)."""
    return mark_safe(_display(fact))  # noqa: S308  (escaped in _display)


# The patient page's fact tables, one row per fact, written here rather than in the templates: a page of 250
# rows paid 16 ms of its ~80 ms to the template language's variable look-ups, escapes and per-row translations
# (bench/viewer_speed.py). Every value is escaped (html.escape, what django.utils.html.escape does); the words
# are translated once per table.


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _display(fact) -> str:
    """A fact's display, escaped, with the sender's local word after it when a standard display leads."""
    display = fact.display
    secondary = f' <span class="secondary">({_e(display.secondary)})</span>' if display.secondary else ""
    return f'<span class="display">{_e(display.text)}</span>{secondary}'


class _Row:
    """What every row of one table shares: the fact pages' base, the words of the language."""

    def __init__(self, context):
        cache = context.render_context
        base = cache.get("viewer_fact_base")
        if base is None:
            base = cache["viewer_fact_base"] = reverse("viewer:patient", args=[context["resident"].uuid]) + "fact/"
        self.base = base
        self.source = _e(gettext("source"))
        self.unknown_place = _e(gettext("institution not recorded"))

    def link(self, fact) -> str:
        return f'<a class="source" href="{_e(self.base)}{_e(fact.resource_type)}/{_e(fact.fhir_id)}/">{self.source}</a>'

    def meta(self, fact) -> str:
        when = timezone.localtime(fact.when).strftime("%Y-%m-%d") if fact.when else ""
        place = _e(fact.institution.name) if fact.institution else self.unknown_place
        return (
            f'<span class="meta"><span class="when">{when}</span> · <span class="institution">{place}</span> · '
            f"{self.link(fact)}</span>"
        )

    def value(self, fact) -> str:
        arrow = " ↑" if fact.flag == "high" else " ↓" if fact.flag == "low" else ""
        return f'<td class="flag-{_e(fact.flag)}">{_e(fact.value)} {_e(fact.unit)}{arrow}</td>'

    def opening(self, fact, classes: str = "fact") -> str:
        return f'<tr class="{classes}" data-ref="{_e(fact.reference)}">'


def _joined(*parts: str) -> str:
    return " · ".join(_e(p) for p in parts if p)


@register.simple_tag(takes_context=True)
def fact_rows(context, rows, layout: str):
    """The rows of one fact table of the patient page (``layout``: the section's columns)."""
    row = _Row(context)
    out = []
    if layout == "allergies":
        for f in rows:
            status = _joined(f.status_text, f.extra.get("verification"), f.extra.get("criticality"))
            out.append(
                f"{row.opening(f, 'fact' if f.active else 'fact muted')}<td>{_display(f)}</td>"
                f"<td>{_e(f.detail)}</td><td>{status}</td><td>{row.meta(f)}</td></tr>"
            )
    elif layout == "medications":
        kinds = {
            "MedicationRequest": _e(gettext("prescription")),
            "MedicationDispense": _e(gettext("dispensed")),
        }
        record = _e(gettext("medication record"))
        for f in rows:
            detail = f'<div class="muted">{_e(f.detail)}</div>' if f.detail else ""
            out.append(
                f"{row.opening(f)}<td>{_display(f)}{detail}</td>"
                f"<td>{kinds.get(f.resource_type, record)} · {_e(f.status_text)}</td><td>{row.meta(f)}</td></tr>"
            )
    elif layout == "conditions":
        for f in rows:
            out.append(
                f"{row.opening(f)}<td>{_display(f)}</td><td>{_joined(f.category, f.status_text, f.detail)}</td>"
                f"<td>{row.meta(f)}</td></tr>"
            )
    elif layout == "encounters":
        for f in rows:
            when = timezone.localtime(f.when).strftime("%Y-%m-%d %H:%M") if f.when else ""
            until = f" – {timezone.localtime(f.until).strftime('%Y-%m-%d')}" if f.until and f.until != f.when else ""
            place = _e(f.institution.name) if f.institution else ""
            detail = f" · {_e(f.detail)}" if f.detail else ""
            out.append(
                f'<li class="fact" data-ref="{_e(f.reference)}"><strong>{when}</strong>{until} · '
                f'<span class="institution">{place}</span> · {_e(f.category)} · {_display(f)}{detail} · '
                f"{_e(f.status_text)} · {row.link(f)}</li>"
            )
    elif layout == "results":
        for f in rows:
            out.append(
                f"{row.opening(f)}<td>{_display(f)}</td>{row.value(f)}<td>{_e(f.reference_range)}</td>"
                f"<td>{_e(f.category)}</td><td>{row.meta(f)}</td></tr>"
            )
    elif layout == "tests":
        for test in rows:
            f = test.latest
            out.append(
                f"{row.opening(f)}<td>{_display(f)}</td>{row.value(f)}<td>{_e(f.reference_range)}</td>"
                f"<td>{test.count}</td><td>{row.meta(f)}</td></tr>"
            )
    elif layout == "reports":
        for f in rows:
            out.append(
                f"{row.opening(f)}<td>{_display(f)}</td><td>{_e(f.detail)}</td>"
                f"<td>{_joined(f.category, f.status_text) if f.category else _e(f.status_text)}</td>"
                f"<td>{row.meta(f)}</td></tr>"
            )
    elif layout == "other":
        for f in rows:
            out.append(
                f"{row.opening(f)}<td>{_e(f.detail)}</td><td>{_display(f)}</td><td>{_e(f.status_text)}</td>"
                f"<td>{row.meta(f)}</td></tr>"
            )
    else:
        raise template.TemplateSyntaxError(f"fact_rows: no layout {layout!r}")
    return mark_safe("\n".join(out))  # noqa: S308  (every value above went through _e)
