"""Mapping between the stores' rows and FHIR R4 resources, one module per resource type."""
