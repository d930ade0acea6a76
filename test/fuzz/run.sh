#!/bin/bash
# run.sh -- run libFuzzer targets for a bounded time each; used by make fuzz-smoke and make fuzz.
#
#   test/fuzz/run.sh SECONDS TARGET...
#
# For each target (binary build/fuzz/bin/TARGET): replay the committed
# crash inputs of test/fuzz/crashes/TARGET/ (past bugs, fixed), then fuzz for
# SECONDS from the committed seeds test/fuzz/corpus/TARGET/ plus the corpus
# kept in build/fuzz/corpus/TARGET/ (where new inputs go), with the
# dictionary test/fuzz/TARGET.dict if there is one.  Prints one line per
# target (executions, coverage, features, corpus size) and fails if any
# target crashed, leaked, timed out or tripped a sanitizer; the input that did
# it is in build/fuzz/artifacts/ and the log in build/fuzz/logs/TARGET.log.
set -u
secs=$1
shift
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
mkdir -p build/fuzz/logs build/fuzz/artifacts
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
total_runs=0
for t in "$@"; do
	# absolute paths: a target may change its working directory
	bin=$top/build/fuzz/bin/$t
	log=$top/build/fuzz/logs/$t.log
	work=$top/build/fuzz/corpus/$t
	seeds=$top/test/fuzz/corpus/$t
	crashes=$top/test/fuzz/crashes/$t
	mkdir -p "$work"
	status=ok
	if [ -d "$crashes" ] && [ -n "$(ls -A "$crashes")" ]; then
		nrep=$(ls "$crashes" | wc -l)
		# each input once; a past hang must now finish well inside -timeout
		if ! "$bin" -timeout=60 -runs=1 "$crashes"/* </dev/null >"$log.replay" 2>&1; then
			status="CRASH replaying test/fuzz/crashes/$t (see $log.replay)"
		fi
	else
		nrep=0
	fi
	dict=()
	[ -f "$top/test/fuzz/$t.dict" ] && dict=("-dict=$top/test/fuzz/$t.dict")
	dirs=("$work")
	[ -d "$seeds" ] && dirs+=("$seeds")
	if [ "$status" = ok ]; then
		"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$top/build/fuzz/artifacts/$t-" "${dict[@]}" "${dirs[@]}" \
			</dev/null >"$log" 2>&1
		rc=$?
		[ $rc -ne 0 ] && status="CRASH (exit $rc, see $log)"
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null | tail -1)
	last=$(grep -E '^#[0-9]+' "$log" 2>/dev/null | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
	printf '%-20s runs=%-10s cov=%-5s ft=%-6s corpus=%-6s replayed=%s  %s\n' "$t" \
		"${runs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$nrep" "$status"
	total_runs=$((total_runs + ${runs:-0}))
	if [ "$status" != ok ]; then
		failed=$((failed + 1))
		tail -n 40 "$log" "$log.replay" 2>/dev/null | sed 's/^/    /'
	fi
done
echo "fuzz: $# targets, $secs s each, $total_runs executions, $failed crashed"
[ $failed -eq 0 ]
