#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl from the pinned sources in hack/controlplane and prints
# the directory that holds them (what KUBEBUILDER_ASSETS wants). The binaries are cached outside
# the checkout, keyed by the module's go.mod/go.sum and this script, so a fresh clone or CI run on
# the same machine reuses them and a second `make test` builds nothing. The version stamped into
# the binaries comes from go.mod and the way of stamping from this script: both are in the key.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/controlplane"
key="$(cat "$src/go.mod" "$src/go.sum" "$src"/*/main.go "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
cache="${CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wechat-qrcode-operator/controlplane}"
dir="$cache/$key"

built() { [[ -x "$dir/etcd" && -x "$dir/kube-apiserver" && -x "$dir/kubectl" ]]; }
if built; then
  echo "$dir"
  exit 0
fi
# One build at a time: concurrent first builds (make dev beside make test, several checkouts)
# would each compile kube-apiserver on the same cores. Whoever waited finds the result built.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if built; then
  echo "$dir"
  exit 0
fi

# The version the Kubernetes release build stamps into its binaries (upstream's hack/lib/version.sh),
# here from the pinned module, so that `kubectl version` and the API server's /version say v1.x.y
# instead of v0.0.0-master+$Format:%H$. go.sum pins the release's exact source, hence a clean tree,
# and the module's time is the release's; the module proxy does not say which commit it is, so
# gitCommit is left empty rather than wrong. etcd's version is a constant of its own module and
# needs nothing.
read -r version built < <(cd "$src" && go list -m -f '{{.Version}} {{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
IFS=. read -r major minor _ <<<"${version#v}"
ldflags='-s -w'
# kubectl and the API server report component-base's; client-go's goes into their User-Agent.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=$built"
done

# Built with the go command's defaults (cgo as `go env CGO_ENABLED` says, no -trimpath), as the tests
# are: with hack/controlplane/go.mod selecting the operator's versions of the modules both use, the
# Kubernetes and gRPC packages the API server and the tests share are compiled once into the build
# cache, not once per setting (-trimpath and CGO_ENABLED=0 each change every package's cache key).
tmp="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
for bin in etcd kube-apiserver kubectl; do
  echo "controlplane: building $bin from source (first time only; minutes on 2 cores)..." >&2
  start=$SECONDS
  (cd "$src" && go build -ldflags="$ldflags" -o "$tmp/$bin" "./$bin")
  echo "controlplane: $bin built in $((SECONDS - start))s" >&2
done
mv -T "$tmp" "$dir"
echo "$dir"
