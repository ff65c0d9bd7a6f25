"""What the browser may do with what the platform serves: the site's Content-Security-Policy, and how a stored
document's own bytes go out (FHIR ``Binary/{id}``, the viewer's document content).

A document is what a hospital sent: bytes under a MIME type the hospital chose. Served inline from our origin,
an XHTML or SVG document's ``<script>`` would run with a staff member's session (stored XSS), so only types a
browser shows without running anything go inline — PDF, raster images and plain text — and everything else is
an attachment (RFC 6266), with ``nosniff`` so that no browser second-guesses the type, and a sandboxing policy
(CSP Level 3 ``sandbox``) so that even a document opened from the downloads runs nothing on our origin.

The site's policy (CSP Level 3) allows scripts, styles, images and frames from our own origin only, no inline
script or style anywhere (the viewer and our admin pages keep theirs in static files; the server-drawn SVG
charts use presentation attributes, not ``style``), no plugins, no ``<base>``, forms posting back to us only,
and framing by our own pages only (the viewer's PDF frame). Django 5.2 has no CSP of its own (6.0 adds one);
one header needs no dependency.
"""

from __future__ import annotations

from django.http import FileResponse

SITE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # data: for the admin's and the browser's own small inline images (icons), never for scripts.
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)
# A stored document opened on its own: nothing of it runs, loads or submits (CSP3 §6.3.2 sandbox, no tokens).
DOCUMENT_POLICY = "sandbox; default-src 'none'"

# Shown by browsers without running any of their content. SVG is an image type that carries script; it is not here.
INLINE_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"})
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _media_type(content_type: str) -> tuple[str, str | None]:
    """(type/subtype in lower case, the charset parameter) of a Content-Type (RFC 9110 §8.3.1); ("", None)
    when it is not one (a header break, a missing subtype)."""
    base, *params = (content_type or "").split(";")
    kind, _, subtype = base.strip().lower().partition("/")
    if not kind or not subtype or not set(kind) <= _TOKEN or not set(subtype) <= _TOKEN:
        return "", None
    charset = None
    for param in params:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "charset" and set(value.strip().strip('"')) <= _TOKEN:
            charset = value.strip().strip('"') or None
    return f"{kind}/{subtype}", charset


def document_presentation(content_type: str) -> tuple[str, bool]:
    """The Content-Type a stored document goes out with, and whether it may be shown inline.

    Plain text goes as ``text/plain`` with its charset (UTF-8 when it said none, what the store decoded it by);
    a type that is not a well-formed media type goes as ``application/octet-stream``, an attachment.
    """
    media_type, charset = _media_type(content_type)
    if not media_type:
        return "application/octet-stream", False
    if media_type == "text/plain":
        return f"text/plain; charset={charset or 'utf-8'}", True
    served = f"{media_type}; charset={charset}" if charset else media_type
    return served, media_type in INLINE_TYPES


def document_response(handle, content_type: str, size: int, *, filename: str, download: bool = False) -> FileResponse:
    """A stored document's bytes (``handle``, closed by the response) as every place that serves one must send
    them: inline only when ``document_presentation`` says so and no download was asked for."""
    served, inline = document_presentation(content_type)
    response = FileResponse(handle, content_type=served, as_attachment=download or not inline, filename=filename)
    response["Content-Length"] = str(size)
    response["X-Content-Type-Options"] = "nosniff"
    # Chromium's PDF viewer does not open in a sandboxed document: a PDF keeps the site's policy instead.
    if not served.startswith("application/pdf"):
        response["Content-Security-Policy"] = DOCUMENT_POLICY
    return response


class ContentSecurityPolicyMiddleware:
    """Sends the site's policy on every response that has none of its own (a stored document's is stricter)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", SITE_POLICY)
        return response
