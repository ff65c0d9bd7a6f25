"""Shared documents in the page: what kind of content a document has, and a readable, safe rendering of CDA and
text content.

A document's content comes from a hospital and is untrusted: nothing of it is ever written to the page as
HTML. A CDA document (HL7 CDA R2, the national shared-document standard WS/T 500 is built on it) is read for
its title, date, author and the sections of its structured body; a section's narrative block
(``section/text``) is rebuilt from a short list of elements (paragraphs, lists, tables, line breaks) into new
elements with their text escaped and no attribute, link, style or script carried over. XML that declares a
DOCTYPE (and so could declare entities: "billion laughs", external entities) is not parsed at all: it is
shown as text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

CDA = "{urn:hl7-org:v3}"
# The most content rendered into the page; a larger document is offered as a download only.
INLINE_MAX_BYTES = 2 * 1024 * 1024
PDF_TYPES = {"application/pdf"}
CDA_TYPES = {"application/xml", "text/xml", "application/hl7-cda+xml", "application/cda+xml"}
TEXT_TYPES = {"text/plain"}


def content_kind(content_type: str) -> str:
    """ "pdf", "cda", "text" or "other", by a document's MIME type (its parameters ignored)."""
    base = (content_type or "").split(";")[0].strip().lower()
    if base in PDF_TYPES:
        return "pdf"
    if base in CDA_TYPES or base.endswith("+xml"):
        return "cda"
    if base in TEXT_TYPES or base.startswith("text/"):
        return "text"
    return "other"


@dataclass
class Section:
    title: str
    html: SafeString
    sections: list[Section] = field(default_factory=list)


@dataclass
class CdaDocument:
    """A CDA document as the page shows it."""

    title: str = ""
    effective: str = ""
    author: str = ""
    custodian: str = ""
    sections: list[Section] = field(default_factory=list)


def _parseable(data: bytes) -> bool:
    head = data[:4096].lower()
    return b"<!doctype" not in head and b"<!entity" not in data.lower()


def cda_read(data: bytes) -> CdaDocument | None:
    """The CDA document in ``data``, or None when it is not well-formed CDA (shown as text instead)."""
    if not _parseable(data):
        return None
    try:
        root = ET.fromstring(data)  # noqa: S314  (no DOCTYPE, so no entity can be declared)
    except ET.ParseError:
        return None
    if root.tag != f"{CDA}ClinicalDocument":
        return None
    document = CdaDocument(title=_text(root.find(f"{CDA}title")))
    effective = root.find(f"{CDA}effectiveTime")
    if effective is not None:
        document.effective = _hl7_time(effective.get("value") or "")
    person = root.find(f"{CDA}author/{CDA}assignedAuthor/{CDA}assignedPerson/{CDA}name")
    document.author = _text(person)
    custodian = root.find(f"{CDA}custodian/{CDA}assignedCustodian/{CDA}representedCustodianOrganization/{CDA}name")
    document.custodian = _text(custodian)
    body = root.find(f"{CDA}component/{CDA}structuredBody")
    if body is not None:
        document.sections = [_section(s) for s in body.findall(f"{CDA}component/{CDA}section")]
    else:
        plain = root.find(f"{CDA}component/{CDA}nonXMLBody/{CDA}text")
        if plain is not None and (plain.get("mediaType") or "text/plain").startswith("text/plain"):
            document.sections = [Section("", mark_safe(f"<pre>{escape(_text(plain))}</pre>"))]  # noqa: S308
    return document


def _text(element) -> str:
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def _hl7_time(value: str) -> str:
    """An HL7 TS (YYYYMMDDHHMM…) as YYYY-MM-DD HH:MM."""
    digits = value[:12]
    if len(digits) >= 8 and digits[:8].isdigit():
        day = f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"
        return f"{day} {digits[8:10]}:{digits[10:12]}" if len(digits) >= 12 and digits.isdigit() else day
    return value


def _section(element, depth: int = 0) -> Section:
    title = _text(element.find(f"{CDA}title"))
    if not title:
        code = element.find(f"{CDA}code")
        title = (code.get("displayName") or "") if code is not None else ""
    narrative = element.find(f"{CDA}text")
    html = mark_safe(_narrative(narrative)) if narrative is not None else mark_safe("")  # noqa: S308
    children = [_section(s, depth + 1) for s in element.findall(f"{CDA}component/{CDA}section")] if depth < 5 else []
    return Section(title, html, children)


# CDA narrative block elements (CDA R2 §4.3.5) -> the HTML element that stands for them; every other element
# contributes only its escaped text.
_NARRATIVE = {
    "paragraph": "p",
    "list": "ul",
    "item": "li",
    "table": "table",
    "thead": "thead",
    "tbody": "tbody",
    "tfoot": "tfoot",
    "tr": "tr",
    "th": "th",
    "td": "td",
    "caption": "caption",
    "sub": "sub",
    "sup": "sup",
    "content": "span",
}


def _narrative(element) -> str:
    """The narrative block of ``element``'s children as HTML built only from ``_NARRATIVE``'s elements, every
    text escaped (the ``noqa`` below: the markup is ours, the text is escaped)."""
    out = [escape(element.text or "")]
    for child in element:
        name = child.tag.removeprefix(CDA) if isinstance(child.tag, str) else ""
        if name == "br":
            out.append("<br>")
        elif name in _NARRATIVE:
            tag = _NARRATIVE[name]
            if name == "list" and (child.get("listType") or "") == "ordered":
                tag = "ol"
            out.append(f"<{tag}>{_narrative(child)}</{tag}>")
        elif name in ("renderMultiMedia", "footnote", "footnoteRef"):
            pass
        else:
            out.append(_narrative(child))
        out.append(escape(child.tail or ""))
    return "".join(out)


def text_read(data: bytes) -> str:
    """Text content as the page shows it (UTF-8, then GB 18030, which Chinese hospital systems still write)."""
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")
