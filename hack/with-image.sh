#!/usr/bin/env bash
# Usage: hack/with-image.sh IMAGE COMMAND...
# Runs COMMAND (typically `go tool kustomize build config/default`) in a scratch copy of config/
# whose manager image is set to IMAGE, so that `make deploy IMG=...` and `make build-installer`
# never leave config/manager/kustomization.yaml changed in the checkout.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 IMAGE COMMAND..." >&2; exit 2; }
img="$1"
shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp -R "$root/config" "$scratch/"
# go.mod and go.sum come along so that `go tool kustomize` finds its version in the scratch copy.
cp "$root/go.mod" "$root/go.sum" "$scratch/"
(cd "$scratch/config/manager" && "${GO:-go}" tool kustomize edit set image "controller=$img")
cd "$scratch"
"$@"
