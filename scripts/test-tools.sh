#!/usr/bin/env bash
# Tools the test suite drives besides the services: headless Chromium for the page tests.
# Idempotent: installs only what is missing.
set -euo pipefail
SERVICE_NAME=test-tools
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium fonts-dejavu-core
fi
log "chromium: $(chromium --version 2>/dev/null || echo missing)"
