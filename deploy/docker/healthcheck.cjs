#!/usr/bin/env node
// Container healthcheck of the Atrium image (the slim base image has no curl):
//   atrium-healthcheck [path]        default path /health
// Asks the service on 127.0.0.1 at ATRIUM_LISTENERS__SERVICE__PORT (default
// 8080) and exits 0 on a 2xx answer within 3 seconds, 1 otherwise.
// CommonJS without top-level await: the image installs it without an
// extension, which Node loads as CommonJS.
'use strict';

const path = process.argv[2] ?? '/health';
const port = process.env.ATRIUM_LISTENERS__SERVICE__PORT ?? '8080';
const url = `http://127.0.0.1:${port}${path.startsWith('/') ? path : `/${path}`}`;

fetch(url, { signal: AbortSignal.timeout(3000) }).then(
  (response) => {
    if (!response.ok) console.error(`${url}: HTTP ${response.status}`);
    process.exit(response.ok ? 0 : 1);
  },
  (err) => {
    console.error(`${url}: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
