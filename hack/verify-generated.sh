#!/usr/bin/env bash
# Regenerates everything controller-gen writes (and the copies of it in the Helm chart) into a
# scratch copy of the tree and fails when the result differs from what is checked in, so a marker
# changed without `make manifests generate` cannot pass the tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# The scratch copy holds the sources as they are in the work tree, tracked or not.
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$scratch")
# The copy has no .git: VERSION given, so that make does not ask git for it.
make -s -C "$scratch" VERSION=scratch manifests generate >/dev/null
status=0
for path in api config/crd/bases config/rbac/manager config/rbac/callback dist/chart/crds dist/chart/files; do
  if ! diff -ru "$root/$path" "$scratch/$path"; then status=1; fi
done
if [[ $status -ne 0 ]]; then
  echo "generated files are stale: run 'make manifests generate' and commit the result" >&2
fi
exit $status
