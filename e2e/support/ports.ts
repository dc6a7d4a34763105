// The same free-port probe the test-server launchers use.
export { freePort } from '@atrium/test-servers';

/** Polls `url` until it answers 200, or fails after `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs = 30_000, isAlive?: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (isAlive && !isAlive()) throw new Error(`process exited before ${url} answered`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
      lastError = `HTTP ${response.status}`;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not become ready in ${timeoutMs} ms (${lastError})`);
}

/**
 * Whether `baseUrl` is served by the process `pid` (its /health names its pid). A port picked
 * by freePort can be taken by another process before ours binds it; our process then fails to
 * listen while the other one answers every readiness check.
 */
export async function servedBy(baseUrl: string, pid: number | undefined): Promise<boolean> {
  try {
    const body = (await (await fetch(`${baseUrl}/health`)).json()) as { pid?: unknown };
    return body.pid === pid;
  } catch {
    return false;
  }
}
