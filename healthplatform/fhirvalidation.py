"""Faster R4B validation: the same checks as fhir_core's, with the per-class work done once per class.

Every resource a hospital writes is validated with its ``fhir.resources.R4B`` model (issue 4), and on the
write path that validation was the largest single cost of a transaction Bundle. Most of it is not pydantic's
own (Rust) validation but three pure-Python checks fhir_core runs on every nested element, each re-deriving
class-level facts on every call:

- ``reject_null_complex_elements`` (a ``before`` model validator): a null inside a list of complex elements
  is an error. fhir_core walks *every* field of the model (an Observation has ~80) asking pydantic about each
  field's type; here the set of keys that hold lists of complex elements is computed once per class, and
  only the keys actually present in the element are looked at.
- ``validate_after_model_construction`` (an ``after`` model validator, which pydantic runs twice per nested
  element: once when fhir_core validates the element, once when the validated instance passes through the
  parent's schema): required primitive elements (R4 extensibility.html#Special-Case) and choice elements
  ``value[x]`` (R4 formats.html#choice) are checked against per-class plans built once.
- ``FhirBase.get_model_klass`` imported the model class from its dotted name on every nested element.

(fhir_core already keeps ``get_alias_mapping`` per class; it is left as it is.)

The fast paths only ever *pass* an element; whenever one sees something that may be an error it calls
fhir_core's original check, so every error (its type, location and message) is fhir_core's own. The two model
validators are bound into each model's schema when the class is created, so ``apply()`` must run before the
R4B model modules are imported: ``healthplatform/__init__.py`` calls it. tests/healthplatform/
test_fhirvalidation.py checks that it is in effect and that outcomes are identical to fhir_core's on mutated
resources. ``bench/fhir_validation.py`` measured 104 -> 65 µs per resource of the synthetic hospital Bundles,
and the write path's Python CPU per one-resident Bundle fell from ~17.0 to ~14.0 ms.
``HP_FHIR_FAST_VALIDATION=0`` in the environment leaves fhir_core untouched (the test compares both).
"""

from __future__ import annotations

import os

_applied = False


def apply() -> None:
    """Installs the fast paths on fhir_core's base classes (once; a no-op with HP_FHIR_FAST_VALIDATION=0)."""
    global _applied
    if _applied or os.environ.get("HP_FHIR_FAST_VALIDATION", "1") == "0":
        return
    from fhir_core.fhirabstractmodel import FHIRAbstractModel
    from fhir_core.types import FhirBase
    from fhir_core.utils import is_list_type, is_primitive_type
    from pydantic._internal._validators import import_string

    original_reject_null = FHIRAbstractModel.reject_null_complex_elements.__func__
    original_after = FHIRAbstractModel.validate_after_model_construction
    original_alias_mapping = FHIRAbstractModel.get_alias_mapping.__func__

    complex_list_keys: dict[type, frozenset[str]] = {}

    def _complex_list_keys(cls) -> frozenset[str]:
        # Both the field's name and its alias: fhir_core looks at one of them (the alias if present), so a
        # null under either key sends the element to fhir_core's own check, which then decides.
        keys = complex_list_keys.get(cls)
        if keys is None:
            found = set()
            for name, info in cls.model_fields.items():
                if is_list_type(info) and not is_primitive_type(info) and not name.endswith("__ext"):
                    found.add(name)
                    if info.alias:
                        found.add(info.alias)
            keys = complex_list_keys[cls] = frozenset(found)
        return keys

    def reject_null_complex_elements(cls, data):
        if not isinstance(data, dict):
            return data
        keys = _complex_list_keys(cls)
        for key, value in data.items():
            # ``is None``, as fhir_core tests (``None in`` would call each item's __eq__).
            if key in keys and isinstance(value, list) and any(item is None for item in value):
                return original_reject_null(cls, data)
        return data

    plans: dict[type, tuple] = {}

    def _plan(instance) -> tuple:
        cls = type(instance)
        plan = plans.get(cls)
        if plan is None:
            aliases = original_alias_mapping(cls)
            required = tuple(aliases[name] for name, _ext in instance.get_required_fields())
            choices = tuple(
                (tuple(fields), cls.model_fields[fields[0]].json_schema_extra["one_of_many_required"] is True)
                for fields in instance.get_one_of_many_fields().values()
            )
            plan = plans[cls] = (required, choices)
        return plan

    def validate_after_model_construction(self):
        required, choices = _plan(self)
        for key in required:
            if getattr(self, key, None) is None:
                return original_after(self)  # missing, or explained by an extension: fhir_core decides
        for fields, choice_required in choices:
            found = False
            for name in fields:
                if getattr(self, name, None) is not None:
                    if found:
                        return original_after(self)
                    found = True
            if choice_required and not found:
                return original_after(self)
        return self

    model_classes: dict[type, type] = {}

    def get_model_klass(cls):
        klass = model_classes.get(cls)
        if klass is None:
            klass = model_classes[cls] = import_string(cls._model_klass)
        return klass

    FHIRAbstractModel.reject_null_complex_elements = classmethod(reject_null_complex_elements)
    FHIRAbstractModel.validate_after_model_construction = validate_after_model_construction
    FhirBase.get_model_klass = classmethod(get_model_klass)
    _applied = True


def in_effect(model_class) -> bool:
    """Whether ``model_class`` (an R4B model) validates through the fast paths (it was created after apply())."""
    validators = model_class.__pydantic_decorators__.model_validators
    return all(
        getattr(validators[name].func, "__func__", validators[name].func).__module__ == __name__
        for name in ("reject_null_complex_elements", "validate_after_model_construction")
    )


def element_path(resource_type: str, loc: tuple) -> str:
    """FHIRPath of the element a pydantic error is about, from the error's ``loc``:
    ('parameter', 0, 'resource', 'birthDate') -> ``Parameters.parameter[0].resource.birthDate``.

    One spelling for every part that validates with the R4B models (the write corridor, the document store,
    the FHIR API), so an OperationOutcome names an element the same way whichever part refused it.
    """
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        part = str(part)
        # Internal steps of pydantic validators ("function-after[...]") are not elements.
        if not part or any(c in part for c in "[](), "):
            continue
        if part == "resource_type":
            part = "resourceType"
        # fhir.resources renames elements that are Python keywords (class -> class_fhir).
        path += "." + part.removesuffix("__ext").removesuffix("_fhir")
    return path
