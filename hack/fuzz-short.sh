#!/usr/bin/env bash
# Runs every Fuzz target of the module for a short while each (FUZZTIME, default 5s), so that
# `make test` exercises them beyond their seed corpus. Targets are discovered with
# `go test -list`, so a new one needs no change here; only packages whose test files declare a
# Fuzz function are asked, because listing runs the package's TestMain, which may start an API
# server. A failing input is kept under the package's testdata/fuzz/, where plain `go test`
# replays it from then on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime="${FUZZTIME:-5s}"
# Extra `go test` flags (make test passes -vet=off: it has run go vet already).
read -ra flags <<<"${FUZZFLAGS:-}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
found=0
for dir in $(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_]' . | xargs -r -n1 dirname | sort -u); do
  for target in $(go test "${flags[@]}" -run '^$' -list '^Fuzz' "$dir" | grep '^Fuzz' || true); do
    found=$((found + 1))
    echo "fuzz: $dir $target ($fuzztime)"
    if ! go test "${flags[@]}" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir" >"$log" 2>&1; then
      # The fuzzing engine sometimes ends a short run with its own "context deadline exceeded"
      # when -fuzztime runs out while a worker is busy (seen under load). A finding always writes
      # its input to testdata/fuzz and says so; without that line there is nothing to report.
      if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written to' "$log"; then
        echo "fuzz: $target: the engine's deadline hit a busy worker; no failing input"
        continue
      fi
      cat "$log"
      status=1
    fi
  done
done
if [[ $found -eq 0 ]]; then
  echo "fuzz: no Fuzz targets found" >&2
  exit 1
fi
echo "fuzz: $found targets, $([[ $status -eq 0 ]] && echo 'all passed' || echo 'FAILURES')"
exit $status
