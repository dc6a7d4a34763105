import { createClient, MatrixError, type MatrixClient } from 'matrix-js-sdk';
import type { Logger } from 'matrix-js-sdk/lib/logger';

/**
 * The SDK logs every request at debug level; tests keep its warnings and
 * errors only, so a failure's output is not buried under request lines.
 */
const quietLogger: Logger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (...msg: unknown[]) => console.warn(...msg),
  error: (...msg: unknown[]) => console.error(...msg),
  getChild: () => quietLogger,
};

/** A matrix-js-sdk client for `baseUrl`, with or without credentials. */
export function client(baseUrl: string, credentials?: { userId: string; accessToken: string; deviceId?: string; refreshToken?: string }): MatrixClient {
  return createClient({
    baseUrl,
    userId: credentials?.userId,
    accessToken: credentials?.accessToken,
    deviceId: credentials?.deviceId,
    refreshToken: credentials?.refreshToken,
    logger: quietLogger,
  });
}

/** Awaits a call that must fail and returns its MatrixError (fails the test otherwise). */
export async function matrixError(call: Promise<unknown>): Promise<MatrixError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof MatrixError) return err;
    throw err;
  }
  throw new Error('expected the call to fail with a Matrix error');
}

let counter = 0;
/** A username unique within this test run. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}${counter}`;
}

/** Registers through the SDK with the dummy stage, as Element does on an open server. */
export async function registerUser(baseUrl: string, username: string, password: string, extra: Record<string, unknown> = {}) {
  const sdk = client(baseUrl);
  const response = await sdk.registerRequest({ username, password, auth: { type: 'm.login.dummy' }, ...extra });
  return response;
}
