"""Orphaned content: files a rolled-back transaction left behind are swept; named and young files stay."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import transaction

from emr.models import DocumentEntry
from emr.services import document_store, documents_sweep
from emr.storage import document_storage
from tests.emr.factories import PDF, reference

pytestmark = pytest.mark.django_db


class Rollback(Exception):
    pass


def test_content_of_a_rolled_back_transaction_is_swept(patient, source):
    with pytest.raises(Rollback), transaction.atomic():
        entry, _ = document_store(identity=patient, source=source, reference=reference(), content=PDF, actor="feed")
        left_behind = entry.content_name
        raise Rollback  # a later entry of the Bundle was refused
    storage = document_storage()
    assert storage.exists(left_behind) and not DocumentEntry.objects.exists()

    report = documents_sweep(older_than=dt.timedelta(0))

    assert report.orphaned == [left_behind]
    assert not storage.exists(left_behind)


def test_the_command_keeps_named_and_young_files_and_a_dry_run_deletes_nothing(patient, source):
    kept, _ = document_store(identity=patient, source=source, reference=reference(), content=PDF, actor="feed")
    storage = document_storage()
    old = storage.save(f"emr/2024/01/{uuid.uuid4()}.pdf", ContentFile(PDF))
    young = storage.save(f"emr/2024/01/{uuid.uuid4()}.pdf", ContentFile(PDF))
    foreign = storage.save("emr/2024/01/notes.txt", ContentFile(b"not a document's content"))
    two_days_ago = time.time() - 2 * 86400
    for name in (old, kept.content_name, foreign):
        os.utime(storage.path(name), (two_days_ago, two_days_ago))

    out = StringIO()
    call_command("documents_sweep", "--dry-run", stdout=out)
    assert out.getvalue().splitlines()[0] == old and "would delete 1" in out.getvalue()
    assert storage.exists(old)

    call_command("documents_sweep", stdout=StringIO())
    assert not storage.exists(old)
    assert storage.exists(young) and storage.exists(kept.content_name) and storage.exists(foreign)
