"""Submission bodies (whole requests and Bundles, tens of kilobytes each) are compressed with lz4, not pglz.

Measured on the FHIR write bench (bench/fhir_speed.py, issue 4): PostgreSQL spent 0.51 ms compressing each
37 kB Bundle body with its default pglz and 0.14 ms with lz4, which also stored it smaller (7.2 against
8.4 kB). PostgreSQL 14 and later offer lz4 when built with it; a server without it keeps pglz. Only rows
written afterwards use it (existing values keep their compression until rewritten).
"""

from django.db import migrations


def _lz4(apps, schema_editor, method="lz4"):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'", [method])
        row = cursor.fetchone()
        if row and row[0]:
            # A catalog change, no rewrite, but it takes the table's lock: wait for it at most 10 s.
            cursor.execute("SET LOCAL lock_timeout = '10s'")
            cursor.execute(f"ALTER TABLE ehr_submission ALTER COLUMN body SET COMPRESSION {method}")


def _pglz(apps, schema_editor):
    _lz4(apps, schema_editor, method="pglz")


class Migration(migrations.Migration):
    dependencies = [("ehr", "0002_identifier_value_first")]

    operations = [migrations.RunPython(_lz4, _pglz)]
