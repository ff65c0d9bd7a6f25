"""The alerts corridor: duplicate test, drug–allergy and duplicate medication, evaluated over one person's
record (``healthplatform.record``) with rules kept as data (``models``); the CDS Hooks service speaks them to
hospital systems."""
