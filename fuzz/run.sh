#!/usr/bin/env bash
# Runs Kith's fuzz targets one after another, each for MINUTES minutes
# (default 10), and prints one result line per target.
#
#   fuzz/run.sh [MINUTES] [TARGET...]      (no TARGET: every target)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Seeds are read from corpus/TARGET (committed, read-only here); what the
# fuzzer finds goes to gen/TARGET (ignored by git), crashes to
# artifacts/TARGET, each run's log to logs/TARGET.log. One libFuzzer process
# at a time, on one core (no -fork, no -jobs).
#
# Environment: FUZZ_ARGS adds libFuzzer flags (for example -max_len=4096);
# FUZZ_SANITIZER picks cargo-fuzz's sanitizer (default none: the Kith crates
# forbid unsafe code, and without ASan a target runs about twice as fast;
# debug assertions and overflow checks stay on).
set -u
cd "$(dirname "$0")"

minutes=${1:-10}
[ $# -gt 0 ] && shift
case $minutes in
  ''|*[!0-9]*) echo "usage: $0 [MINUTES] [TARGET...]" >&2; exit 2 ;;
esac
seconds=$((minutes * 60))
sanitizer=${FUZZ_SANITIZER:-none}
# FUZZ_FEATURES= (empty) builds without the agent and hub crates: enough for
# wire_record, wire_directive, identifiers, signed_note and proof.
features=${FUZZ_FEATURES-services}
build=(-s "$sanitizer" -a)
[ -n "$features" ] && build+=(--features "$features")
[ -n "${FUZZ_TARGET_DIR:-}" ] && build+=(--target-dir "$FUZZ_TARGET_DIR")

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

mkdir -p logs
cargo +nightly fuzz build "${build[@]}" >logs/build.log 2>&1 || {
  echo "build failed: see fuzz/logs/build.log" >&2
  tail -20 logs/build.log >&2
  exit 1
}

status=0
for t in "${targets[@]}"; do
  mkdir -p "gen/$t" "corpus/$t" "artifacts/$t"
  log="logs/$t.log"
  cargo +nightly fuzz run "${build[@]}" "$t" "gen/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  # libFuzzer's last status line: "#N DONE cov: C ft: F corp: U/SIZE exec/s: E rss: R"
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  execs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  speed=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
  ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last" | cut -d' ' -f2)
  rss=$(grep -oE 'rss: [0-9]+Mb' <<<"$last" | cut -d' ' -f2)
  if [ $rc -eq 0 ]; then
    outcome="no crash"
  else
    status=1
    artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | cut -d' ' -f5)
    outcome="CRASH (exit $rc) ${artifact:-see $log}"
  fi
  printf '%-15s %3d min  execs %s  exec/s %s  cov %s  ft %s  corpus %s  rss %s  %s\n' \
    "$t" "$minutes" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$outcome"
done
exit $status
