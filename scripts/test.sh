#!/usr/bin/env bash
# Runs the suite on SQLite and on PostgreSQL, then the browser tests. Any failing run fails the whole;
# a run that collects no tests (pytest exit 5) is a failure too, never hidden.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
which_runs="${1:-all}"
status=0

ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then return 0; fi
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "== installing Debian's chromium for the browser tests"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "The browser tests need /usr/bin/chromium: run 'sudo apt-get install chromium'." >&2
    exit 1
  fi
}

ensure_postgresql() {
  if ! "$BIN/python" - <<'PY'
import psycopg, sys
try:
    psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3).close()
except Exception as exc:
    print(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {exc}", file=sys.stderr)
    sys.exit(1)
PY
  then
    echo "Start PostgreSQL (the tests create and drop a throwaway database per run)." >&2
    exit 1
  fi
}

run() {  # run NAME PYTEST-ARGS...
  local name=$1; shift
  echo "== pytest on $name"
  set +e
  "$@"
  local rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    [ $rc -eq 5 ] && echo "!! $name collected no tests: that is a failure" >&2
    echo "!! $name failed (exit $rc)" >&2
    status=1
  fi
}

if [ "$which_runs" = all ]; then
  # The STS engine against the published vectors: the copy in the repository, and the shared set
  # beside the checkout when there is one (it may grow with further vectors from the same suite).
  for vectors in tests/sts/vectors/vectors-dev.jsonl ../shared/sts/vectors-dev.jsonl; do
    if [ -f "$vectors" ]; then
      echo "== STS conformance: $vectors"
      "$BIN/citygas" sts conformance "$vectors" > /tmp/citygas-conformance.log || { cat /tmp/citygas-conformance.log; status=1; }
      tail -n 1 /tmp/citygas-conformance.log | sed 's/^/   /'
    fi
  done
fi
if [ "$which_runs" = all ] || [ "$which_runs" = sqlite ]; then
  run sqlite env CITYGAS_TEST_DB=sqlite "$BIN/pytest" -q -m "not browser" -p no:cacheprovider
fi
if [ "$which_runs" = all ] || [ "$which_runs" = postgresql ]; then
  ensure_postgresql
  run postgresql env CITYGAS_TEST_DB=postgresql "$BIN/pytest" -q -m "not browser" -p no:cacheprovider
fi
if [ "$which_runs" = all ] || [ "$which_runs" = browser ]; then
  ensure_chromium
  run browser env CITYGAS_TEST_DB=sqlite "$BIN/pytest" -q -m browser -p no:cacheprovider
fi
exit $status
