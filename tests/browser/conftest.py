"""Real-browser fixtures: Debian's Chromium driven by Playwright against pytest-django's live server.

Playwright's own browser download is not reachable from our machines, so the
tests use the system Chromium (``apt-get install chromium fonts-noto-cjk``):
``CHROMIUM_PATH`` if set, else ``/usr/bin/chromium``, else ``chromium`` on the
PATH. Without it the tests skip, unless ``REQUIRE_BROWSER=1`` (CI sets it) makes
a missing browser an error.

Every test in this folder gets the ``browser`` marker, so ``-m "not browser"``
leaves them out.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ADMIN_USERNAME = "root"
ADMIN_PASSWORD = "a-long-test-password"


def pytest_collection_modifyitems(items):
    # A conftest's collection hook sees the whole session's items: mark only ours.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Keeps each phase's report on the item, so the page fixture knows whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def chromium_path() -> str | None:
    """The Chromium executable to drive, or None when this machine has none."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def browser_unavailable(reason: str):
    """Skips, or fails when REQUIRE_BROWSER=1 so that CI cannot pass by skipping."""
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def browser():
    """One headless Chromium for the browser tests of this folder.

    Package scope rather than session scope on purpose: while Playwright's sync
    API is started, the test thread sits inside a running asyncio loop, so
    Django refuses its synchronous ORM calls (SynchronousOnlyOperation) and
    ``asyncio.run`` fails. ``DJANGO_ALLOW_ASYNC_UNSAFE`` lifts Django's check —
    safe here, as no coroutine touches the database — and both the loop and the
    override end with the last browser test instead of leaking into the rest of
    the suite.
    """
    executable = chromium_path()
    if executable is None:
        where = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium or chromium on the PATH"
        browser_unavailable(f"no Chromium at {where} (apt-get install chromium fonts-noto-cjk)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("the playwright package is not installed (pip install -e '.[dev]')")

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        # --no-proxy-server: the only site these tests visit is our own live server.
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-proxy-server"])
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, request, tmp_path):
    """A fresh page in its own context (no cookies shared between tests), in Chinese as in China.

    When the test fails, a screenshot of the page is saved and its path printed
    in the failure report.
    """
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    # Every page must work under the site's Content-Security-Policy (issue 18): a violation in any frame is
    # reported to the console, by Chromium itself and by this listener (an init script, which the page's policy
    # does not govern), and fails the test.
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation: ' + e.effectiveDirective + ' blocked ' + (e.blockedURI || 'inline') + ' in ' + e.documentURI))"
    )
    violations: list[str] = []
    page = context.new_page()
    page.on(
        "console",
        lambda m: (
            violations.append(m.text)
            if m.type == "error" and ("Content Security Policy" in m.text or m.text.startswith("CSP violation"))
            else None
        ),
    )
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        page.screenshot(path=shot, full_page=True)
        print(f"screenshot of the page at failure ({page.url}): {shot}")
    context.close()
    if violations:
        pytest.fail("the page broke the site's Content-Security-Policy:\n" + "\n".join(violations), pytrace=False)


@pytest.fixture
def admin_user(transactional_db, django_user_model):
    """A superuser in the live server's database (the live server needs committed rows)."""
    return django_user_model.objects.create_superuser(ADMIN_USERNAME, email="", password=ADMIN_PASSWORD)


@pytest.fixture
def admin_page(page, live_server, admin_user):
    """A page logged in to the admin through its real login form; it starts on the admin index."""
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", ADMIN_USERNAME)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    return page
