#!/usr/bin/env bash
# Install Debian's chromium for the browser test (tests/browser/).
#
# Idempotent: does nothing when /usr/bin/chromium (or $YUQING_CHROMIUM) is
# already there. Otherwise installs the `chromium` package with apt-get,
# refreshing the package lists only when apt cannot find the package.
# Playwright's own browser downloads are never used.
# Exit status: 0 when chromium is available afterwards, non-zero otherwise
# (with a message saying what to do).
set -euo pipefail

CHROMIUM="${YUQING_CHROMIUM:-/usr/bin/chromium}"

if [[ -x "$CHROMIUM" ]]; then
    echo "install_chromium: $CHROMIUM is present ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install_chromium: $CHROMIUM is missing and this script is not running as root." >&2
    echo "install_chromium: run 'sudo apt-get install -y --no-install-recommends chromium' (Debian/Ubuntu), then re-run the tests." >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: $CHROMIUM is missing and apt-get is not available; install Debian's 'chromium' package by other means." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Refresh the lists only when the package is not known yet (fresh containers
# ship without lists); a second run must not hit the network.
if ! apt-cache show chromium >/dev/null 2>&1; then
    echo "install_chromium: package lists do not know 'chromium'; running apt-get update"
    apt-get update -q || { echo "install_chromium: apt-get update failed (offline?)" >&2; exit 1; }
fi

echo "install_chromium: installing Debian's chromium package"
if ! apt-get install -y -q --no-install-recommends chromium; then
    echo "install_chromium: 'apt-get install chromium' failed; see the apt output above." >&2
    exit 1
fi

if [[ ! -x "$CHROMIUM" ]]; then
    echo "install_chromium: apt-get finished but $CHROMIUM is still missing." >&2
    exit 1
fi
echo "install_chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
