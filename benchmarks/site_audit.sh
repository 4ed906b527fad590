#!/usr/bin/env bash
# Lighthouse audit of the demo site: prints the four category scores per page.
#   bash benchmarks/site_audit.sh [SITE_DIR]   (default: demo-output/site; run `make demo` first)
# Installs lighthouse@12 (Node 20) into node/ on first use. Targets (issue #7): >= 95 each.
set -euo pipefail
cd "$(dirname "$0")/.."
SITE=${1:-demo-output/site}
[ -f "$SITE/index.html" ] || { echo "no site in $SITE: run 'make demo' first" >&2; exit 2; }
if [ ! -x node/node_modules/.bin/lighthouse ]; then
    mkdir -p node
    [ -f node/package.json ] || echo '{"name": "observatoire-tools", "private": true}' > node/package.json
    (cd node && CHROMEDRIVER_SKIP_DOWNLOAD=true npm install --silent --no-audit --no-fund lighthouse@12 >/dev/null)
fi
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/python -m http.server "$PORT" --bind 127.0.0.1 --directory "$SITE" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
sleep 1
DEP=$(cd "$SITE" && ls departements/[0-9]*.html | head -1)
printf "%-32s %11s %13s %14s %4s\n" page performance accessibility best-practices seo
for page in index.html "$DEP" methodologie.html donnees/index.html; do
    out=$(mktemp)
    CHROME_PATH=/usr/bin/chromium node/node_modules/.bin/lighthouse "http://127.0.0.1:$PORT/$page" \
        --quiet --output=json --output-path="$out" \
        --chrome-flags="--headless=new --no-sandbox --disable-gpu" >/dev/null 2>&1 || true
    .venv/bin/python - "$out" "$page" <<'PY'
import json, sys
try:
    cats = json.load(open(sys.argv[1]))["categories"]
    s = [round(100 * cats[k]["score"]) for k in ("performance", "accessibility", "best-practices", "seo")]
    print(f"{sys.argv[2]:32} {s[0]:11} {s[1]:13} {s[2]:14} {s[3]:4}")
except Exception as exc:
    print(f"{sys.argv[2]:32} lighthouse failed: {exc}")
PY
    rm -f "$out"
done
