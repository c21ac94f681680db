#!/usr/bin/env bash
# Debian's headless Chromium for the browser tests (Playwright drives it through its executable path, since
# Playwright's own browser download cannot reach its server here).  Prints the executable's path.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2
fi
command -v chromium
