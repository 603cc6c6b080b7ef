"""Browser tests: a real dashboard server driven by Debian's headless Chromium.

The ``browser`` marker is registered here as well as in pyproject.toml, so
``--strict-markers`` passes whichever of the two a checkout has.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "browser: drives a real headless Chromium (tests/browser/install_chromium.sh installs it)",
    )
