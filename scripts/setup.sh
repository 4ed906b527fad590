#!/usr/bin/env bash
# Sets up everything observatoire needs on a fresh Debian machine, idempotently:
# system packages (Chromium and its headless shell for the Playwright adapters, poppler
# for PDF checks), then a virtualenv in .venv with the package and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# The headless shell: what the robot launches (lighter and faster than full Chromium).
command -v chromium-headless-shell >/dev/null 2>&1 || need_apt+=(chromium-headless-shell)
command -v pdftoppm >/dev/null 2>&1 || need_apt+=(poppler-utils)
if ((${#need_apt[@]})); then
    echo "setup: installing system packages: ${need_apt[*]}"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi
# Extras: the test tools by default; the container image sets OBSERVATOIRE_EXTRAS="" to
# install the robot alone (same script, fewer packages).
EXTRAS=${OBSERVATOIRE_EXTRAS-test}
spec=.
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
stamp=.venv/.installed-$( (cat pyproject.toml; echo "$EXTRAS") | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
    echo "setup: installing Python packages into .venv ($spec)"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e "$spec"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
# axe-core (accessibility checks of the public site in the browser tests), from npm;
# only with the test tools.
if [ -n "$EXTRAS" ] && command -v npm >/dev/null 2>&1 \
    && [ ! -f node/node_modules/axe-core/axe.min.js ]; then
    echo "setup: installing axe-core from npm into node/"
    mkdir -p node
    [ -f node/package.json ] || echo '{"name": "observatoire-tools", "private": true}' > node/package.json
    (cd node && npm install --silent --no-audit --no-fund axe-core@4 >/dev/null)
fi
echo "setup: ready"
