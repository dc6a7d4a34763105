#!/bin/sh
# Builds FerretDB 1.24.2 into .tools/bin/ferretdb for the MongoDB storage
# adapter's tests (its PostgreSQL backend needs the postgresql package; see
# tools/ferretdb/postgres.go). Needs Go >= 1.24 and the Go module
# proxy. Idempotent: does nothing when the binary is newer than its sources.
#
# The binary is built from the wrapper module in tools/ferretdb (see main.go
# there for why FerretDB's own main package is not used).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/tools/ferretdb"
out_dir="$root/.tools/bin"
out="$out_dir/ferretdb"

mkdir -p "$out_dir"
# .tools/ holds built binaries only; keep it out of git without touching the
# repository's .gitignore.
[ -f "$root/.tools/.gitignore" ] || printf '*\n' > "$root/.tools/.gitignore"

if [ -x "$out" ]; then
  stale=$(find "$src" \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$out" | head -n 1)
  if [ -z "$stale" ]; then
    echo "ferretdb: $out is up to date"
    exit 0
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  echo "ferretdb: Go (>= 1.24) is required on PATH to build FerretDB" >&2
  exit 1
fi

echo "ferretdb: building FerretDB v1.24.2 into $out (takes a few minutes the first time)"
start=$(date +%s)
cd "$src"
# Build to a temporary name so an interrupted build never leaves a broken binary.
go build -trimpath -o "$out.tmp" .
mv "$out.tmp" "$out"
echo "ferretdb: built in $(( $(date +%s) - start ))s"
