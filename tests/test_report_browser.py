"""The HTML report opened in real headless Chromium (Debian's `chromium` package).

`./scripts/test` installs Chromium as root and sets REFLOW_TEST_BROWSER=required;
then (and in CI, CI=true) a browser that does not start fails the test.
Elsewhere the test skips, saying why.  Chromium prints what a page writes to its
console (script errors, refused loads) on stderr as `CONSOLE` lines with
`--enable-logging=stderr`: the test first checks that it does so for a page
known to be bad, then that the report makes none.  The screenshot is kept at
a stable path the test prints, to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from report_support import failed_run

pytestmark = pytest.mark.browser

# read at import: conftest.py clears REFLOW_* variables around each test
REQUIRED = (
    os.environ.get("REFLOW_TEST_BROWSER", "").strip().lower() == "required"
    or os.environ.get("CI") == "true"
)
BROWSER = shutil.which("chromium")
PNG = b"\x89PNG\r\n\x1a\n"
CONSOLE = re.compile(r":CONSOLE[:(]")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with `args`; stdout and stderr as text."""
    assert BROWSER is not None
    flags = [
        "--headless",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
    ]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    return subprocess.run(
        [BROWSER, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A profile directory for Chromium, once it is known to start (else skip, or fail)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    problem = None
    if BROWSER is None:
        problem = "no 'chromium' on PATH (apt-get install chromium)"
    else:
        try:
            done = chromium(profile, "--dump-dom", "data:text/html,<p id=up>up</p>")
            if 'id="up"' not in done.stdout:
                problem = f"chromium did not start (exit {done.returncode}): {done.stderr[-400:]}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = f"chromium did not start: {exc}"
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"REFLOW_TEST_BROWSER=required (or CI) but {problem}")
        pytest.skip(f"the browser test needs headless Chromium: {problem}")
    return profile


def test_console_errors_are_seen(browser: Path, tmp_path: Path) -> None:
    """The detector itself: a script error on a page is a CONSOLE line."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p>bad</p><script>notDefined()</script>", encoding="utf-8")
    done = chromium(browser, "--dump-dom", bad.as_uri())
    assert CONSOLE.search(done.stderr), done.stderr[-2000:]


def test_the_report_renders_in_chromium(
    browser: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = failed_run(tmp_path)
    page = run.report(tmp_path / "run.html")

    done = chromium(browser, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if CONSOLE.search(line)]
    assert console == [], "\n".join(console)
    dom = done.stdout
    assert re.search(r'<svg id="dag"[^>]*>', dom)
    assert len(re.findall(r'<g class="task" data-task="', dom)) == 3
    assert re.search(r'<svg id="timeline"[^>]*>', dom)
    assert dom.count('<g class="band">') == 2  # split and work ran; total was skipped
    assert "&lt;script&gt;alert('boom')&lt;/script&gt;" in dom  # shown as text, not run

    shot = tmp_path / "report.png"
    done = chromium(browser, f"--screenshot={shot}", "--window-size=1280,2200", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert not [line for line in done.stderr.splitlines() if CONSOLE.search(line)]
    data = shot.read_bytes()
    assert data.startswith(PNG) and len(data) > 20_000  # a page drawn, not a blank one
    kept = tmp_path_factory.getbasetemp() / "report-screenshot.png"
    shutil.copyfile(shot, kept)
    print(f"\nthe report's screenshot: {kept}")
