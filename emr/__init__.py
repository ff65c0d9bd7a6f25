"""Shared EMR document store (models come with the archive issue)."""
