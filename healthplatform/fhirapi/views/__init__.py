"""FHIR views, one module per resource type or IHE transaction."""
