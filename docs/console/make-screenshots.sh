#!/usr/bin/env bash
# Screenshots of every console page into docs/console/ (docs/console.md): a hub of its own,
# the browser test's scenario, Debian's headless chromium through Selenium.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m tests.console_screens docs/console
