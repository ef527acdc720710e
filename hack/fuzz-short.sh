#!/usr/bin/env bash
# Runs every Fuzz target of the module for a short while each (FUZZTIME, default 5s), so that
# `make test` exercises them beyond their seed corpus. Targets are discovered with
# `go test -list`, so a new one needs no change here; only packages whose test files declare a
# Fuzz function are asked, because listing runs the package's TestMain, which may start an API
# server. A failing input is kept under the package's testdata/fuzz/, where plain `go test`
# replays it from then on.
#
# FUZZSKIPDEPS (make test sets it) leaves out the packages whose test binary imports a package
# under one of its import paths: `go test -fuzz` instruments every package of the binary, so
# fuzzing one that carries controller-runtime compiles the Kubernetes client a second time (over
# 1,100 packages, 6 minutes of a cold CI run). Plain `go test` still replays their seed corpora.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime="${FUZZTIME:-5s}"
# Extra `go test` flags (make test passes -vet=off: its lint has run go vet's analyzers already).
read -ra flags <<<"${FUZZFLAGS:-}"
read -ra skipdeps <<<"${FUZZSKIPDEPS:-}"
# skipdep prints the first of skipdeps that the test binary of package $1 imports.
skipdep() {
  [[ ${#skipdeps[@]} -gt 0 ]] || return 1
  local deps
  deps="$(go list -deps -test "$1")"
  for dep in "${skipdeps[@]}"; do
    if grep -qE "^${dep//./\\.}(/|\$)" <<<"$deps"; then
      echo "$dep"
      return 0
    fi
  done
  return 1
}
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
found=0
skipped=0
for dir in $(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_]' . | xargs -r -n1 dirname | sort -u); do
  if dep="$(skipdep "$dir")"; then
    skipped=$((skipped + 1))
    echo "fuzz: $dir not fuzzed: its tests import $dep (make fuzz fuzzes it)"
    continue
  fi
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
echo "fuzz: $found targets$([[ $skipped -eq 0 ]] || echo ", packages not fuzzed: $skipped"), $([[ $status -eq 0 ]] && echo 'all passed' || echo 'FAILURES')"
exit $status
