from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = _("Registry")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from registry.models import (
            CodeSystem,
            Concept,
            ConceptMapEntry,
            DrugClassMember,
            DrugIngredient,
            Institution,
            Practitioner,
            SourceSystem,
        )
        from registry.selectors import resolved_forget
        from registry.terminology import code_maps_forget, drug_terminology_forget

        # A change to the directory made in this process is seen by the next reference at once (other
        # processes: within registry.selectors.RESOLVED_SECONDS).
        for model in (Institution, Practitioner, SourceSystem):
            post_save.connect(resolved_forget, sender=model, dispatch_uid=f"registry-resolved-save-{model.__name__}")
            post_delete.connect(resolved_forget, sender=model, dispatch_uid=f"registry-resolved-del-{model.__name__}")
        for model in (Concept, DrugIngredient, DrugClassMember):
            for signal, kind in ((post_save, "save"), (post_delete, "del")):
                signal.connect(
                    drug_terminology_forget, sender=model, dispatch_uid=f"registry-drugs-{kind}-{model.__name__}"
                )
        # The code maps the write corridor translates with: a map entry, a local code system or a concept's
        # display changed here is used by the next write of this process (others: within SNAPSHOT_SECONDS).
        for model in (CodeSystem, Concept, ConceptMapEntry):
            for signal, kind in ((post_save, "save"), (post_delete, "del")):
                signal.connect(
                    code_maps_forget, sender=model, dispatch_uid=f"registry-codemaps-{kind}-{model.__name__}"
                )
