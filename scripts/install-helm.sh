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
GOBIN="$out_dir" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "helm: built in $(( $(date +%s) - start ))s"
"$out" version --short
