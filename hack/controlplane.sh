#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl from the pinned sources in hack/controlplane and prints
# the directory that holds them (what KUBEBUILDER_ASSETS wants). The binaries are cached outside
# the checkout, keyed by the module's go.mod/go.sum and this script, so a fresh clone or CI run on
# the same machine reuses them and a second `make test` builds nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/controlplane"
key="$(cat "$src/go.mod" "$src/go.sum" "$src"/*/main.go "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
cache="${CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wechat-qrcode-operator/controlplane}"
dir="$cache/$key"

if [[ -x "$dir/etcd" && -x "$dir/kube-apiserver" && -x "$dir/kubectl" ]]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
for bin in etcd kube-apiserver kubectl; do
  echo "controlplane: building $bin from source (first time only; minutes on 2 cores)..." >&2
  start=$SECONDS
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp/$bin" "./$bin")
  echo "controlplane: $bin built in $((SECONDS - start))s" >&2
done
# A concurrent build may have won the race; either result is the same pinned source.
mv -T "$tmp" "$dir" 2>/dev/null || true
echo "$dir"
