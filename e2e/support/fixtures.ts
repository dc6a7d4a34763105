/**
 * Set-up helpers the end-to-end suites share: a registered user with a
 * logged-in matrix-js-sdk client, raw HTTP with an access token (for what the
 * SDK does not expose, or checks client-side), a raw /sync, a room its
 * members have joined, and waits with a bound.
 */
import type { MatrixClient } from 'matrix-js-sdk';
import { client, registerUser, uniqueName } from './clients';
import { startTestServer, type Mode, type TestServer, type TestServerOptions } from './servers';

export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A registered user: its credentials and a matrix-js-sdk client logged in as it. */
export interface TestUser {
  userId: string;
  token: string;
  deviceId: string;
  password: string;
  sdk: MatrixClient;
}

/** Register burst high enough for a suite that registers a user per test (the default limit would answer 429). */
export const REGISTER_BURST_ENV = { ATRIUM_RATE_LIMITS__REGISTER__BURST: '100', ATRIUM_RATE_LIMITS__REGISTER__PER_SECOND: '10' };

/** Registers a user named uniquely from `prefix` on `base` and logs a matrix-js-sdk client in as it. */
export async function newUser(base: string, prefix: string, password: string): Promise<TestUser> {
  const response = await registerUser(base, uniqueName(prefix), password);
  return {
    userId: response.user_id,
    token: response.access_token!,
    deviceId: response.device_id!,
    password,
    sdk: client(base, { userId: response.user_id, accessToken: response.access_token!, deviceId: response.device_id }),
  };
}

/**
 * Starts a suite's server and registers a user per name in turn (the suites' alice, bob, …), all
 * with `password`. A failed registration stops the server before the error is passed on.
 */
export async function startWithUsers(mode: Mode, options: TestServerOptions, password: string, names: string[]): Promise<{ server: TestServer; users: TestUser[] }> {
  const server = await startTestServer(mode, options);
  try {
    const users: TestUser[] = [];
    for (const name of names) users.push(await newUser(server.baseUrl, name, password));
    return { server, users };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/**
 * Raw HTTP to `base` + `prefix` + `path`, with `token` as the bearer (none when null); a string
 * body goes as it is (malformed JSON), anything else as JSON. Answers the status and the JSON
 * body ({} for an empty one).
 */
export async function rawApi(
  base: string,
  token: string | null | undefined,
  method: string,
  path: string,
  body?: unknown,
  prefix = '/_matrix/client/v3',
): Promise<{ status: number; json: Json }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${base}${prefix}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as Json) : {} };
}

/** GET /sync with `query` (non-string values as JSON, undefined ones left out); expects 200 and answers the body. */
export async function rawSync(base: string, token: string, query: Record<string, string | number | boolean | undefined> = {}): Promise<Json> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, typeof v === 'string' ? v : JSON.stringify(v));
  const res = await rawApi(base, token, 'GET', `/sync?${params.toString()}`);
  expect(res.status).toBe(200);
  return res.json;
}

/**
 * A private_chat room `owner` creates with `members` invited, each of whom then joins; answers its
 * ID. `attempt` wraps each request (a suite that retries set-up calls on 503 passes its retry).
 */
export async function roomWithMembers(
  base: string,
  owner: { token: string },
  members: { userId: string; token: string }[],
  attempt: (call: () => Promise<{ status: number; json: Json }>) => Promise<{ status: number; json: Json }> = (call) => call(),
): Promise<string> {
  const created = await attempt(() => rawApi(base, owner.token, 'POST', '/createRoom', { preset: 'private_chat', invite: members.map((m) => m.userId) }));
  expect(created.status).toBe(200);
  const roomId = created.json.room_id as string;
  for (const member of members) {
    expect((await attempt(() => rawApi(base, member.token, 'POST', `/rooms/${encodeURIComponent(roomId)}/join`, {}))).status).toBe(200);
  }
  return roomId;
}

/** Polls `check` every `intervalMs` until it returns a value, at most `ms`. */
export async function eventually<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 15_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** `promise`, or a failure naming `what` after `ms`. */
export async function within<T>(what: string, promise: Promise<T>, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
