#!/bin/sh
# Installs Synapse (the reference Matrix homeserver) into a Python venv at
# .tools/synapse-venv, for the federation interop suite (e2e/interop), which
# starts it through tools/test-servers/synapse.ts. Needs Python >= 3.10
# (python3.11 preferred) and PyPI. Idempotent: when the venv already holds the
# pinned version it only says so (well under a second).
set -eu

SYNAPSE_VERSION=1.163.2

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.tools/synapse-venv"
mkdir -p "$root/.tools"
# .tools/ holds installed tools only; keep it out of git without touching the
# repository's .gitignore.
[ -f "$root/.tools/.gitignore" ] || printf '*\n' > "$root/.tools/.gitignore"

stamp="$venv/.installed-$SYNAPSE_VERSION"
if [ -f "$stamp" ] && [ -x "$venv/bin/python" ]; then
  echo "synapse: $SYNAPSE_VERSION is installed in $venv"
  exit 0
fi

python=
for candidate in python3.11 python3.12 python3.13 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "synapse: Python >= 3.10 is required on PATH (python3.11 preferred)" >&2
  exit 1
fi

echo "synapse: installing matrix-synapse $SYNAPSE_VERSION into $venv with $("$python" --version)"
start=$(date +%s)
# A fresh venv each time: a half-finished earlier install leaves no stamp.
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "matrix-synapse==$SYNAPSE_VERSION"
"$venv/bin/python" -c 'import synapse; print("synapse: imported", synapse.__version__)'
touch "$stamp"
echo "synapse: installed in $(( $(date +%s) - start ))s"
