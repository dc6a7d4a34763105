#!/bin/sh
# Installs Helm 3 into .tools/bin/helm, for the deployment tests in e2e/deploy
# (`helm lint` and `helm template` of helm/atrium). Helm is built from source
# with `go install` because the Go module proxy is the only download source
# that works on the build machines; it needs Go >= 1.24 on PATH.
# Idempotent: does nothing when .tools/bin/helm already reports the pinned
# version. Override the version with HELM_VERSION=v3.x.y.
set -eu

HELM_VERSION="${HELM_VERSION:-v3.21.4}"
root=$(cd "$(dirname "$0")/.." && pwd)
out_dir="$root/.tools/bin"
out="$out_dir/helm"

mkdir -p "$out_dir"
# .tools/ holds built binaries only; keep it out of git without touching the
# repository's .gitignore.
[ -f "$root/.tools/.gitignore" ] || printf '*\n' > "$root/.tools/.gitignore"

if [ -x "$out" ]; then
  # `go install` leaves Helm's version string at its default, so compare the
  # module version recorded in the binary's build info instead.
  have=$(go version -m "$out" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" { print $3 }')
  if [ "$have" = "$HELM_VERSION" ]; then
    echo "helm: $out is $HELM_VERSION, nothing to do"
    exit 0
  fi
  echo "helm: $out is ${have:-unknown}, replacing with $HELM_VERSION"
fi

if ! command -v go >/dev/null 2>&1; then
  echo "helm: Go (>= 1.24) is required on PATH to build Helm" >&2
  exit 1
fi

echo "helm: building helm.sh/helm/v3/cmd/helm@$HELM_VERSION into $out (a few minutes the first time)"
start=$(date +%s)
# Helm's Makefile stamps its version and the Kubernetes version it assumes
# (for `helm template` and the lint deprecation checks) with -X flags; a
# plain `go install` would leave Kubernetes at 1.20 and reject charts that
# need newer. The Kubernetes version is that of the client-go Helm uses.
mod_dir=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
k8s_minor=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$mod_dir/go.mod" | head -n 1)
if [ -z "$k8s_minor" ]; then
  echo "helm: cannot read the client-go version from $mod_dir/go.mod" >&2
  exit 1
fi
ldflags="-w -s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
GOBIN="$out_dir" go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "helm: built in $(( $(date +%s) - start ))s"
"$out" version --short
