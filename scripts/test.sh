#!/usr/bin/env bash
# Runs the whole test suite. Locally, tests needing PostgreSQL or Chromium skip with a
# reason when those are absent; under CI (CI=true) their absence is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL_DEFAULT="postgresql+psycopg://postgres@127.0.0.1:5432/test"
if [ -z "${OBSERVATOIRE_TEST_DATABASE_URL:-}" ]; then
    if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
        # The machine's server may just be stopped: start it if we can.
        if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
            pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start \
                >/dev/null 2>&1 || true
            sleep 2
        fi
    fi
    if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
        export OBSERVATOIRE_TEST_DATABASE_URL="$PG_URL_DEFAULT"
    elif [ "${CI:-}" = "true" ]; then
        echo "CI: PostgreSQL is not reachable at 127.0.0.1:5432 — refusing to skip its tests" >&2
        exit 1
    else
        echo "note: PostgreSQL not reachable; its tests will be skipped" >&2
    fi
fi
if [ "${CI:-}" = "true" ]; then
    export OBSERVATOIRE_REQUIRE_ALL_TESTS=1
fi

.venv/bin/ruff check observatoire tests benchmarks migrations
.venv/bin/ruff format --check observatoire tests benchmarks migrations
# Type-checks the package and the benchmarks ([tool.mypy] in pyproject.toml); an error
# fails the run like a failing test.
.venv/bin/mypy
set +e
# Two workers (pytest-xdist) on the two cores CI has: most tests wait on subprocesses,
# sockets and sleeps. Tests reading the shared demo stay on one worker (conftest.py), so
# it is built once. OBSERVATOIRE_TEST_WORKERS=0 runs everything in this process.
workers=${OBSERVATOIRE_TEST_WORKERS:-2}
.venv/bin/python -m pytest -q -n "$workers" --dist loadgroup "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "no test was collected" >&2
    exit 1
fi
exit "$rc"
