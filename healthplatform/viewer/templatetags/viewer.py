"""Template filters of the viewer."""

from django import template

register = template.Library()


@register.filter
def get(mapping, key):
    """``mapping[key]``, or "" (dictionary look-up by a variable key)."""
    try:
        return mapping.get(key, "")
    except AttributeError:
        return ""
