#!/bin/sh
# Runs PgBouncer's own test suite on the patched and on the upstream build, and compares them test by test.
#
# Usage: tests/upstream/run_pgbouncer_suite.sh [BUILD_DIR]   (as root; default BUILD_DIR=build)
#
# Both trees are the ones CMake built (targets pgbouncer and pgbouncer_upstream).
# The suite runs as user `postgres` (initdb and pgbouncer refuse root), with
# PostgreSQL 15's binaries on PATH, two xdist workers each.  Skipped alike in
# both: the tests that need `sudo iptables` (USE_SUDO) and
# test_prepared_statement_pipeline_latency (needs the kernel's netem qdisc).
# Exits non-zero when a test passes on upstream but not on the patched build.
set -eu
cd "$(dirname "$0")/../.."
build=$(cd "${1:-build}" && pwd)

cmake --build "$build" --target pgbouncer pgbouncer_upstream

work=$(mktemp -d /tmp/pgbv-upstream-suite.XXXXXX)
trap 'rm -rf "$work"' INT TERM
for v in patched upstream; do
	cp -a "$build/pgbouncer/$v/src" "$work/$v"
done
chown -R postgres "$work"

run() {
	runuser -u postgres -- env HOME="$work" PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin \
		sh -c "cd '$work/$1/test' && /usr/bin/python3 -m pytest -n 2 -q -p no:cacheprovider \
			--deselect test_prepared.py::test_prepared_statement_pipeline_latency \
			--junitxml='$work/$1.xml' . >'$work/$1.log' 2>&1" || true
	tail -n 1 "$work/$1.log" | sed "s/^/$1: /"
}
run patched
run upstream

if /usr/bin/python3 - "$work/patched.xml" "$work/upstream.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

def outcomes(path):
    result = {}
    for case in ET.parse(path).iter("testcase"):
        name = f'{case.get("classname")}::{case.get("name")}'
        kinds = {child.tag for child in case}
        result[name] = ("failed" if kinds & {"failure", "error"}
                        else "skipped" if "skipped" in kinds else "passed")
    return result

patched, upstream = outcomes(sys.argv[1]), outcomes(sys.argv[2])
worse = sorted(t for t, o in upstream.items() if o == "passed" and patched.get(t) != "passed")
better = sorted(t for t, o in patched.items() if o == "passed" and upstream.get(t) != "passed")
for t in worse:
    print(f"passes upstream, not patched: {t} ({patched.get(t, 'missing')})")
for t in better:
    print(f"passes patched, not upstream: {t} ({upstream.get(t, 'missing')})")
count = lambda d, o: sum(1 for v in d.values() if v == o)
print(f"patched:  {count(patched, 'passed')} passed, {count(patched, 'failed')} failed, {count(patched, 'skipped')} skipped")
print(f"upstream: {count(upstream, 'passed')} passed, {count(upstream, 'failed')} failed, {count(upstream, 'skipped')} skipped")
print("same outcome for every test" if not worse and not better else "outcomes differ")
sys.exit(1 if worse else 0)
PY
then
	rm -rf "$work"
else
	echo "logs and JUnit files kept in $work" >&2
	exit 1
fi
