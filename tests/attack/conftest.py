"""The attacks reuse the viewer's region (tests/viewer/scenario.py) and its logged-in clinician of hospital A."""

from tests.viewer.conftest import doctor, region  # noqa: F401
