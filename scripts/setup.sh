#!/usr/bin/env bash
# Sets up everything observatoire needs on Debian 12 (bookworm), idempotently:
#   - system packages: python3 (>= 3.11) with venv/ensurepip (python3-venv), make (the
#     README's `make demo` / `make test`), Chromium's headless shell for the Playwright
#     adapters (else full Chromium, said so), poppler-utils (PDF checks);
#   - a virtualenv in .venv with the package (and its test tools unless
#     OBSERVATOIRE_EXTRAS="", as on a server and in the container image).
# Prerequisite not installed here: git, to get this checkout in the first place.
#
# Every missing package is checked against apt BEFORE anything is installed: when one
# cannot be found (e.g. Ubuntu, where Chromium is a snap wrapper and there is no
# `chromium-headless-shell` package), the script stops with a message saying what to do,
# and nothing is half-installed. OBSERVATOIRE_CHROMIUM_PATH=/path/to/chromium skips the
# Chromium packages (bring your own browser).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }
die() {
    echo "setup: error: $*" >&2
    exit 1
}

if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    SUDO="__none__"
fi

PY=${PYTHON:-python3}
need_apt=()
why=()
want() { need_apt+=("$1"); why+=("$1 ($2)"); }

# Python 3.11+ with venv. Debian splits ensurepip into python3-venv, missing on a minimal
# system ("ensurepip is not available"): `-m venv` would then leave a broken .venv.
if [ ! -x .venv/bin/python ]; then
    if ! command -v "$PY" >/dev/null 2>&1; then
        [ -z "${PYTHON:-}" ] || die "PYTHON=$PY not found"
        want python3 "Python interpreter"
        want python3-venv "virtualenvs"
    elif ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        [ -z "${PYTHON:-}" ] || die "$PY has no venv/ensurepip module"
        want python3-venv "ensurepip is not available: needed by python3 -m venv"
    fi
fi
command -v make >/dev/null 2>&1 || want make "the README's make demo / make test"

# The browser. The robot launches chromium-headless-shell (lighter), else chromium.
if [ -n "${OBSERVATOIRE_CHROMIUM_PATH:-}" ]; then
    [ -x "$OBSERVATOIRE_CHROMIUM_PATH" ] \
        || die "OBSERVATOIRE_CHROMIUM_PATH=$OBSERVATOIRE_CHROMIUM_PATH is not an executable"
    say "using the browser at OBSERVATOIRE_CHROMIUM_PATH=$OBSERVATOIRE_CHROMIUM_PATH"
elif ! command -v chromium-headless-shell >/dev/null 2>&1; then
    want chromium-headless-shell "the browser the robot launches"
fi
# The test tools also load the browser extension (extension/), which the headless shell
# cannot do: its tests need full Chromium. A server (OBSERVATOIRE_EXTRAS="") skips it.
if [ -n "${OBSERVATOIRE_EXTRAS-test}" ] && [ -z "${OBSERVATOIRE_CHROMIUM_PATH:-}" ] \
    && ! command -v chromium >/dev/null 2>&1; then
    want chromium "the browser-extension tests (full Chromium)"
fi
command -v pdftoppm >/dev/null 2>&1 || want poppler-utils "PDF checks of the dossiers"
# OCR of the screenshots applicants upload from a phone (observatoire/captures/ocr.py).
command -v tesseract >/dev/null 2>&1 || want tesseract-ocr "OCR of uploaded screenshots"
[ -e /usr/share/tesseract-ocr/5/tessdata/fra.traineddata ] \
    || ls /usr/share/tesseract-ocr/*/tessdata/fra.traineddata >/dev/null 2>&1 \
    || want tesseract-ocr-fra "French OCR model"

os_id=$( (. /etc/os-release 2>/dev/null && echo "${ID:-} ${ID_LIKE:-}") || true)

if ((${#need_apt[@]})); then
    command -v apt-get >/dev/null 2>&1 \
        || die "missing: ${why[*]}; this script installs them with apt (Debian 12). Install them yourself, then run it again."
    [ "$SUDO" != "__none__" ] || die "missing: ${why[*]}; run this script as root or install sudo"
    say "system packages needed: ${why[*]}"
    $SUDO apt-get update -qq
    # Check every package first: install all of them, or none.
    absent=()
    for pkg in "${need_apt[@]}"; do
        candidate=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
        [ -n "$candidate" ] && [ "$candidate" != "(none)" ] || absent+=("$pkg")
    done
    if [[ " ${absent[*]} " == *" chromium-headless-shell "* ]]; then
        if [[ " $os_id " == *" ubuntu "* ]]; then
            die "Ubuntu has no chromium-headless-shell package and its chromium is a snap wrapper, which the robot cannot drive from a service. Use the docker compose set-up (docs/operator.md), or install a Chromium yourself and set OBSERVATOIRE_CHROMIUM_PATH. Nothing was installed."
        fi
        chromium_candidate=$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ {print $2}')
        if command -v chromium >/dev/null 2>&1 \
            || { [ -n "$chromium_candidate" ] && [ "$chromium_candidate" != "(none)" ]; }; then
            say "no chromium-headless-shell package here: falling back to full chromium (heavier)"
            mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | grep -vx chromium-headless-shell)
            command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
            mapfile -t absent < <(printf '%s\n' "${absent[@]}" | grep -vx chromium-headless-shell || true)
        fi
    fi
    if ((${#absent[@]})) && [ -n "${absent[*]}" ]; then
        die "apt has no package named: ${absent[*]}. Nothing was installed. On Debian 12, enable the main and bookworm-security sources; elsewhere install them yourself (or use docker compose)."
    fi
    if ((${#need_apt[@]})); then
        say "installing: ${need_apt[*]}"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
            "${need_apt[@]}" >/dev/null
    fi
fi
command -v git >/dev/null 2>&1 || say "note: git is not installed; you need it to update this checkout (git pull)"

if [ ! -x .venv/bin/python ]; then
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "observatoire needs Python 3.11 or newer; $PY is $("$PY" -V 2>&1)"
    say "creating .venv"
    if ! "$PY" -m venv .venv; then
        rm -rf .venv
        die "$PY -m venv failed (on Debian: apt-get install python3-venv)"
    fi
fi
# Extras: the test tools by default; the container image sets OBSERVATOIRE_EXTRAS="" to
# install the robot alone (same script, fewer packages).
EXTRAS=${OBSERVATOIRE_EXTRAS-test}
spec=.
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
stamp=.venv/.installed-$( (cat pyproject.toml; echo "$EXTRAS") | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
    say "installing Python packages into .venv ($spec)"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e "$spec"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
# axe-core (accessibility checks of the public site in the browser tests), from npm;
# only with the test tools.
if [ -n "$EXTRAS" ] && command -v npm >/dev/null 2>&1 \
    && [ ! -f node/node_modules/axe-core/axe.min.js ]; then
    say "installing axe-core from npm into node/"
    mkdir -p node
    [ -f node/package.json ] || echo '{"name": "observatoire-tools", "private": true}' > node/package.json
    (cd node && npm install --silent --no-audit --no-fund axe-core@4 >/dev/null)
fi
.venv/bin/observatoire version >/dev/null || die ".venv/bin/observatoire does not run"
say "ready"
