"""The platform's document classes (the national shared-document categories) and their LOINC document types.

The five classes are the shared documents a region exchanges most, named as in WS/T 500-2016 (电子病历共享文档规范):
part 2 门(急)诊病历, parts 4–5 处方 (西药/中药), part 6 检查报告, part 7 检验报告, part 53 出院小结. A
DocumentReference carries its class in ``category`` (a coding of ``DOCUMENT_CLASS_SYSTEM``) or, failing
that, the class is read from its LOINC ``type``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _

DOCUMENT_CLASS_SYSTEM = "urn:platform:codes:document-class"
LOINC = "http://loinc.org"


class DocumentClass(models.TextChoices):
    """A national shared-document category (the code of ``DOCUMENT_CLASS_SYSTEM``)."""

    OUTPATIENT_SUMMARY = "outpatient-summary", _("outpatient summary")
    DISCHARGE_SUMMARY = "discharge-summary", _("discharge summary")
    EXAM_REPORT = "exam-report", _("examination report")
    LAB_REPORT = "lab-report", _("laboratory report")
    PRESCRIPTION = "prescription", _("prescription")


@dataclass(frozen=True)
class ClassConcept:
    """One concept of the document-class code system: Chinese and English displays and its usual LOINC type."""

    code: str
    display: str
    display_en: str
    loinc: str
    loinc_display: str


# The displays are data (they go on the wire in Coding.display), not UI text, so they are not translated.
DOCUMENT_CLASSES: dict[str, ClassConcept] = {
    c.code: c
    for c in (
        # 34133-9 "Summary of episode note": the summary of one outpatient or emergency visit.
        ClassConcept(
            "outpatient-summary", "门(急)诊病历摘要", "Outpatient summary", "34133-9", "Summary of episode note"
        ),
        ClassConcept("discharge-summary", "出院小结", "Discharge summary", "18842-5", "Discharge summary"),
        # 检查报告 in WS/T 500.6 is mostly imaging (and other instrument studies): 18748-4.
        ClassConcept("exam-report", "检查报告", "Examination report", "18748-4", "Diagnostic imaging study"),
        ClassConcept("lab-report", "检验报告", "Laboratory report", "11502-2", "Laboratory report"),
        ClassConcept("prescription", "处方", "Prescription", "57833-6", "Prescription for medication"),
    )
}

# LOINC document types that name a class when a sender gives no category: the usual one of each class
# plus near synonyms hospitals send for an outpatient record (34108-1 Outpatient note, 11488-4 Consult note).
LOINC_TO_CLASS: dict[str, str] = {
    **{c.loinc: code for code, c in DOCUMENT_CLASSES.items()},
    "34108-1": "outpatient-summary",
    "11488-4": "outpatient-summary",
}


def class_coding(code: str) -> dict:
    """The FHIR Coding of a document class."""
    concept = DOCUMENT_CLASSES[code]
    return {"system": DOCUMENT_CLASS_SYSTEM, "code": concept.code, "display": concept.display}


def loinc_type_coding(code: str) -> dict:
    """The FHIR Coding of the usual LOINC document type of a class."""
    concept = DOCUMENT_CLASSES[code]
    return {"system": LOINC, "code": concept.loinc, "display": concept.loinc_display}
