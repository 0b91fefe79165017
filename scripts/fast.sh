#!/usr/bin/env bash
# The inner loop, to run after every change: the fast tier of the tests (`pytest -m "not
# slow"`, on 4 xdist workers: under a minute on 2 cores) with coverage.py over pi_app, then the
# share of pi_app's lines it ran. `bash scripts/fast.sh [pytest args]` (e.g. `-x`, `-n 0`, a file);
# needs the venv that scripts/test.sh makes. Fails if a test fails, or (run without
# arguments) if the coverage falls under 80 %. The whole suite: `bash scripts/test.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
# pytest keeps its rewritten test modules as bytecode: without it, every run compiles them
# all again (~4 s)
unset PYTHONDONTWRITEBYTECODE
PY=.venv/bin/python
[ -x "$PY" ] || { echo "no .venv here: run 'bash scripts/test.sh' once first" >&2; exit 2; }
nargs=$#
start=$(date +%s.%N)
status=0
"$PY" -m pytest -m "not slow" -q -p no:cacheprovider --cov=pi_app --cov-report= "$@" || status=$?
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
total=$("$PY" -m coverage report --format=total 2>/dev/null || echo "?")
echo "fast tier: ${took} s; coverage of pi_app's lines: ${total} %"
if [ "$nargs" -eq 0 ] && [ "$status" -eq 0 ] && [ "$total" != "?" ] && [ "$total" -lt 80 ]; then
    echo "coverage under 80 %: a module lost its fast tests" >&2
    status=1
fi
exit "$status"
