/**
 * The few Client-Server API calls the client benchmark makes, over plain
 * fetch (keep-alive), so what is measured is the server and not a client
 * library's own work.
 */
export interface Session {
  userId: string;
  accessToken: string;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what}: HTTP ${status} ${body.slice(0, 300)}`);
  }
}

async function call<T>(base: string, method: string, path: string, token: string | undefined, body?: unknown): Promise<T> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new HttpError(response.status, text, `${method} ${path}`);
  return JSON.parse(text) as T;
}

/** Registers with the m.login.dummy stage (the benchmark servers run with open registration). */
export async function register(base: string, username: string): Promise<Session> {
  const body = { username, password: `bench-${username}-pw`, auth: { type: 'm.login.dummy' }, initial_device_display_name: 'bench' };
  const response = await call<{ user_id: string; access_token: string }>(base, 'POST', '/_matrix/client/v3/register', undefined, body);
  return { userId: response.user_id, accessToken: response.access_token };
}

export async function createRoom(base: string, session: Session, options: Record<string, unknown> = {}): Promise<string> {
  const response = await call<{ room_id: string }>(base, 'POST', '/_matrix/client/v3/createRoom', session.accessToken, { preset: 'public_chat', ...options });
  return response.room_id;
}

export async function join(base: string, session: Session, roomId: string): Promise<void> {
  await call(base, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, session.accessToken, {});
}

let txn = 0;
export async function sendMessage(base: string, session: Session, roomId: string, body: string): Promise<string> {
  txn += 1;
  const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/bench${process.pid}-${txn}`;
  const response = await call<{ event_id: string }>(base, 'PUT', path, session.accessToken, { msgtype: 'm.text', body });
  return response.event_id;
}

export interface SyncResponse {
  next_batch: string;
  rooms?: { join?: Record<string, { timeline?: { events?: Array<{ event_id: string }> } }> };
}

export async function sync(base: string, session: Session, params: Record<string, string>): Promise<{ body: SyncResponse; bytes: number }> {
  const query = new URLSearchParams(params).toString();
  const response = await fetch(`${base}/_matrix/client/v3/sync?${query}`, { headers: { authorization: `Bearer ${session.accessToken}` } });
  const text = await response.text();
  if (!response.ok) throw new HttpError(response.status, text, 'GET /sync');
  return { body: JSON.parse(text) as SyncResponse, bytes: Buffer.byteLength(text) };
}
