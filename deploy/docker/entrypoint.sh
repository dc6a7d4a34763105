#!/bin/sh
# Entry point of the Atrium image: starts one app from dist/apps.
#
#   docker run atrium client-api --config /etc/atrium/atrium.yaml
#   docker run -e ATRIUM_APP=client-api atrium --config /etc/atrium/atrium.yaml
#   docker run atrium homeserver generate-config --server-name example.org ...
#   docker run atrium                      # the embedded homeserver
#
# The app is the first argument when it names an app, else $ATRIUM_APP, else
# `homeserver` (every service in one process). Other arguments go to the app.
# `exec` makes node PID 1, so it receives the SIGTERM of `docker stop` and
# Kubernetes directly and can shut down cleanly.
set -eu

app_dir="${ATRIUM_DIST:-/app/dist}/apps"

if [ "$#" -gt 0 ] && [ -f "$app_dir/$1/src/main.js" ]; then
  app="$1"
  shift
else
  app="${ATRIUM_APP:-homeserver}"
fi

main="$app_dir/$app/src/main.js"
if [ ! -f "$main" ]; then
  echo "atrium: no app named '$app' (looked for $main); apps:" >&2
  ls "$app_dir" >&2 || true
  exit 64
fi

exec node "$main" "$@"
