"""Headless Chromium (Debian's ``chromium`` package) for tests that look at HTML pages."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (apt-get install chromium)")


def render(page: Path, screenshot: Path) -> str:
    """Load ``page``, run its scripts, save a screenshot and return the DOM as rendered."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
        f"--user-data-dir={screenshot.parent / 'chromium-profile'}",
    ]
    url = page.resolve().as_uri()
    subprocess.run(
        [chromium(), *flags, "--window-size=1280,4000", f"--screenshot={screenshot}", url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [chromium(), *flags, "--dump-dom", url],
        check=True,
        capture_output=True,
        timeout=120,
        text=True,
    )
    return dom.stdout
