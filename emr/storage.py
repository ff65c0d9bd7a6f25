"""Where document content is kept: a Django storage, looked up when used (so a settings change takes effect)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage, storages

# A deployment may give documents their own backend (an S3-compatible bucket) as STORAGES["documents"];
# without one they go to the default storage, which the settings point at DOCUMENT_STORAGE_DIR.
DOCUMENTS_ALIAS = "documents"


class DurableFileSystemStorage(FileSystemStorage):
    """A filesystem storage whose saved files are on disk when ``save`` returns (fsync of the file and of
    its folder), not only in the page cache: a document is saved before the database commits its row and
    the sender is answered, so a crash after that answer must not leave the row pointing at a lost or
    truncated file. Measured here: about 0.4 ms per file."""

    def _save(self, name, content):
        name = super()._save(name, content)
        path = self.path(name)
        for target, flags in ((path, os.O_RDONLY), (os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)):
            fd = os.open(target, flags)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return name


def document_storage() -> Storage:
    """The storage that holds document content.

    Looked up on every call rather than bound to a model field: a ``FileField`` evaluates its
    storage once at import, and tests (or a deployment) that change ``STORAGES`` would be ignored.
    """
    configured = getattr(settings, "STORAGES", {}) or {}
    if DOCUMENTS_ALIAS in configured:
        return storages[DOCUMENTS_ALIAS]
    if "default" in configured:
        return storages["default"]
    # No storage configured at all: a folder under the platform data dir (or the project) still works.
    base = (
        getattr(settings, "DOCUMENT_STORAGE_DIR", None)
        or (getattr(settings, "DATA_DIR", None) or settings.BASE_DIR / "data") / "documents"
    )
    return DurableFileSystemStorage(location=str(base))
