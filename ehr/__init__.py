"""Health archive: longitudinal clinical facts per person (models come with the archive issue)."""
