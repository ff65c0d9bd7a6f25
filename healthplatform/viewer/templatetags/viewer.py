"""Template filters of the viewer."""

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
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
    """A fact's display, with the sender's local word after it when a standard display leads (a tag rather than
    an include: it is written for every row of the page)."""
    display = fact.display
    if display.secondary:
        return format_html(
            '<span class="display">{}</span> <span class="secondary">({})</span>', display.text, display.secondary
        )
    return format_html('<span class="display">{}</span>', display.text)


@register.simple_tag(takes_context=True)
def fact_meta(context, fact):
    """A fact's date, institution and the link to its fact page."""
    cache = context.render_context
    base = cache.get("viewer_fact_base")
    if base is None:
        base = cache["viewer_fact_base"] = reverse("viewer:patient", args=[context["resident"].uuid]) + "fact/"
    when = timezone.localtime(fact.when).strftime("%Y-%m-%d") if fact.when else ""
    place = fact.institution.name if fact.institution else gettext("institution not recorded")
    return format_html(
        '<span class="meta"><span class="when">{}</span> · <span class="institution">{}</span> · '
        '<a class="source" href="{}{}/{}/">{}</a></span>',
        when,
        place,
        base,
        fact.resource_type,
        fact.fhir_id,
        gettext("source"),
    )
