/**
 * The federation interop harness (docs/federation-design.md, "interop
 * harness"): per test file, one peer per peer kind (a real Synapse, or a second
 * Atrium in embedded mode) and one Atrium under test per mode, federating over
 * TLS on loopback with certificates from one throwaway test CA.
 *
 * Both servers' names are IP literals with a port (`127.0.0.1:<port>`), so
 * neither needs DNS or .well-known (server-server-api "Resolving server
 * names", steps 1 and 2). Synapse trusts the CA through
 * `federation_custom_ca_list`, Atrium through `federation.trusted_ca_paths`,
 * and both exempt loopback from their IP blocklists.
 *
 * A test file:
 *
 *     describe.each(interopPeers())('… with peer %s', (peerKind) => {
 *       const peers = usePeer(peerKind);                  // one Synapse or Atrium peer
 *       describe.each(interopModes())('(%s mode)', (mode) => {
 *         const atrium = useAtrium(mode, peers);          // one Atrium under test per mode
 *         it('…', async () => {
 *           const alice = await atrium.user('alice');     // on Atrium
 *           const bob = await peers.user('bob');          // on the peer
 *           …
 *         });
 *       });
 *     });
 *
 * Peers are selected with ATRIUM_INTEROP_PEERS (`synapse,atrium` by default),
 * modes with ATRIUM_INTEROP_MODES. Steps that only make sense against Synapse
 * check `peers.kind === 'synapse'` and say why.
 *
 * Scenarios that cannot pass yet are declared with `pendingIt(reason)`: skipped
 * in the default run (CI), run with ATRIUM_INTEROP_PENDING=1.
 */
import type { MatrixClient } from 'matrix-js-sdk';
import { createTestCa, startSynapse, synapseLogDir, type SynapseOptions, type SynapseServer, type TestCa } from '@atrium/test-servers';
import { client, uniqueName } from './clients';
import { eventually, newUser, rawApi, REGISTER_BURST_ENV, type Json } from './fixtures';
import { startTestServer, type Mode, type TestServer, type TestServerOptions } from './servers';

export const INTEROP_PASSWORD = 'pw-interop-123';
/** How long a test waits for something to cross from one server to the other. */
export const FEDERATION_WAIT_MS = 30_000;
/** Synapse and an Atrium cluster starting together on a loaded two-core machine. */
const START_TIMEOUT_MS = 240_000;

/**
 * The modes an interop file runs Atrium in: `ATRIUM_INTEROP_MODES` (comma-separated), else both.
 */
export function interopModes(): Mode[] {
  const raw = process.env.ATRIUM_INTEROP_MODES;
  if (!raw) return ['embedded', 'cluster'];
  return raw.split(',').map((m) => m.trim()).filter((m): m is Mode => m === 'embedded' || m === 'cluster');
}

/**
 * `it` for a scenario that needs work not landed yet: skipped (with `reason` in its name) unless
 * ATRIUM_INTEROP_PENDING=1, so CI never runs a test known to fail while the code stays runnable.
 */
export function pendingIt(reason: string): (name: string, fn: () => Promise<void>, timeout?: number) => void {
  if (process.env.ATRIUM_INTEROP_PENDING === '1') return (name, fn, timeout) => it(name, fn, timeout);
  return (name, fn, timeout) => it.skip(`${name} [pending: ${reason}]`, fn, timeout);
}

/** A user on either server, with raw client-API access to its own server and a matrix-js-sdk client. */
export interface PeerUser {
  userId: string;
  token: string;
  deviceId: string;
  /** Client-API base URL of the user's own server. */
  base: string;
  /** Its server's name (the part of the user ID after the first colon). */
  serverName: string;
  sdk: MatrixClient;
  /** Raw HTTP to its own server's client API (`/_matrix/client/v3` + path). */
  api(method: string, path: string, body?: unknown, prefix?: string): Promise<{ status: number; json: Json }>;
}

function peerUser(base: string, serverName: string, userId: string, token: string, deviceId: string): PeerUser {
  return {
    userId,
    token,
    deviceId,
    base,
    serverName,
    sdk: client(base, { userId, accessToken: token, deviceId }),
    api: (method, path, body, prefix) => rawApi(base, token, method, path, body, prefix),
  };
}

/** Which server an interop file federates Atrium with: a real Synapse, or a second Atrium. */
export type PeerKind = 'synapse' | 'atrium';

/**
 * The peers an interop file runs against: `ATRIUM_INTEROP_PEERS` (comma-separated `synapse`,
 * `atrium`), else both. Each scenario's describe runs once per (peer × mode).
 */
export function interopPeers(): PeerKind[] {
  const raw = process.env.ATRIUM_INTEROP_PEERS;
  if (!raw) return ['synapse', 'atrium'];
  return raw.split(',').map((p) => p.trim()).filter((p): p is PeerKind => p === 'synapse' || p === 'atrium');
}

/** A peer's name in test titles and messages. */
export function peerLabel(kind: PeerKind): string {
  return kind === 'synapse' ? 'Synapse' : 'an Atrium peer';
}

/**
 * Where the running peer's log is (Jest gives each file its own module registry, so this is per
 * file), quoted by the wait helpers when they time out: Synapse's log file, or the Atrium peer's
 * process output (kept in memory), quoted as its tail.
 */
let peerLogHint: (() => string) | undefined;

/** `eventually` (fixtures), with the peer's log (path or tail) added to a timeout's message. */
export async function waitWithLog<T>(what: string, check: () => Promise<T | undefined>, ms: number, intervalMs: number): Promise<T> {
  try {
    return await eventually(what, check, ms, intervalMs);
  } catch (err) {
    throw new Error(`${(err as Error).message} (${peerLogHint?.() ?? 'peer log: none'})`);
  }
}

/** The server Atrium federates with in an interop file: Synapse or a second (embedded) Atrium. */
export interface InteropPeer {
  kind: PeerKind;
  /** 'Synapse' or 'an Atrium peer', for titles and messages. */
  label: string;
  ca(): TestCa;
  serverName(): string;
  /** Client-API base URL. */
  clientUrl(): string;
  /** Federation base URL (`https://127.0.0.1:<port>`). */
  federationUrl(): string;
  /** Registers a user on the peer (Synapse: shared-secret admin API; Atrium: open /register). */
  user(prefix: string): Promise<PeerUser>;
  /** The last `chars` of the peer's log, with where it is. */
  logTail(chars: number): string;
  /** The Synapse behind this peer; throws for an Atrium peer (a Synapse-only step called for it). */
  synapse(): SynapseServer;
}

/** Kept for files written before the peer dimension: the Synapse peer. */
export type SynapsePeer = InteropPeer;

/**
 * One test CA and one peer for the enclosing describe (the file's top level, or one peer's
 * describe): started in beforeAll, stopped in afterAll. An Atrium peer runs embedded: the Atrium
 * under test keeps its modes, the peer only has to be a correct other server.
 */
export function usePeer(kind: PeerKind, options: Partial<Omit<SynapseOptions, 'ca'>> = {}): InteropPeer {
  return kind === 'synapse' ? useSynapse(options) : useAtriumPeer();
}

/** One test CA and one Synapse for the enclosing describe: started in beforeAll, stopped in afterAll. */
export function useSynapse(options: Partial<Omit<SynapseOptions, 'ca'>> = {}): InteropPeer {
  let ca: TestCa | undefined;
  let synapse: SynapseServer | undefined;
  beforeAll(async () => {
    ca = createTestCa();
    synapse = await startSynapse({ ...options, ca });
    const logPath = synapse.logPath;
    peerLogHint = () => `Synapse log: ${logPath}`;
  }, START_TIMEOUT_MS);
  afterAll(async () => {
    await synapse?.stop();
  });
  const need = (): SynapseServer => {
    if (!synapse) throw new Error(`Synapse did not start (logs in ${synapseLogDir()})`);
    return synapse;
  };
  return {
    kind: 'synapse',
    label: peerLabel('synapse'),
    ca: () => {
      if (!ca) throw new Error('test CA not created');
      return ca;
    },
    serverName: () => need().serverName,
    clientUrl: () => need().clientUrl,
    federationUrl: () => need().federationUrl,
    synapse: need,
    logTail: (chars) => `--- synapse (${need().logPath}) ---\n${need().logTail(chars)}`,
    async user(prefix) {
      const s = need();
      const u = await s.registerUser(uniqueName(prefix), INTEROP_PASSWORD);
      return peerUser(s.clientUrl, s.serverName, u.userId, u.accessToken, u.deviceId);
    },
  };
}

/** Tail of an Atrium's processes' output, for messages. */
function atriumOutput(server: TestServer, chars: number, label: string): string {
  return server.processes.map((p) => `--- ${label} ${p.name} ---\n${p.output().slice(-chars)}`).join('\n');
}

/** One test CA and one embedded Atrium as the peer: started in beforeAll, stopped in afterAll. */
export function useAtriumPeer(): InteropPeer {
  let ca: TestCa | undefined;
  let server: TestServer | undefined;
  beforeAll(async () => {
    ca = createTestCa();
    server = await startTestServer('embedded', {
      federationTls: ca,
      env: { ...REGISTER_BURST_ENV, ATRIUM_TELEMETRY__LOG_LEVEL: 'info' },
    });
    const started = server;
    peerLogHint = () => `Atrium peer ${started.serverName} output:\n${atriumOutput(started, 2_000, 'atrium peer')}`;
  }, START_TIMEOUT_MS);
  afterAll(async () => {
    await server?.stop();
  });
  const need = (): TestServer => {
    if (!server) throw new Error('Atrium peer did not start');
    return server;
  };
  return {
    kind: 'atrium',
    label: peerLabel('atrium'),
    ca: () => {
      if (!ca) throw new Error('test CA not created');
      return ca;
    },
    serverName: () => need().serverName,
    clientUrl: () => need().baseUrl,
    federationUrl: () => {
      const url = need().federationUrl;
      if (!url) throw new Error('the Atrium peer serves no federation URL');
      return url;
    },
    synapse: () => {
      throw new Error('this step is Synapse-only, but the peer is an Atrium');
    },
    logTail: (chars) => atriumOutput(need(), chars, 'atrium peer'),
    async user(prefix) {
      const s = need();
      const u = await newUser(s.baseUrl, prefix, INTEROP_PASSWORD);
      return peerUser(s.baseUrl, s.serverName, u.userId, u.token, u.deviceId);
    },
  };
}

export interface AtriumPeer {
  server(): TestServer;
  /** Registers a user on Atrium (open registration, dummy stage). */
  user(prefix: string): Promise<PeerUser>;
}

/** One Atrium in `mode` federating with the describe's peer: started in beforeAll, stopped in afterAll. */
export function useAtrium(mode: Mode, peers: InteropPeer, options: TestServerOptions = {}): AtriumPeer {
  let server: TestServer | undefined;
  beforeAll(async () => {
    server = await startTestServer(mode, {
      ...options,
      federationTls: peers.ca(),
      env: { ...REGISTER_BURST_ENV, ATRIUM_TELEMETRY__LOG_LEVEL: 'info', ...options.env },
    });
  }, START_TIMEOUT_MS);
  afterAll(async () => {
    await server?.stop();
  });
  const need = (): TestServer => {
    if (!server) throw new Error('Atrium did not start');
    return server;
  };
  return {
    server: need,
    async user(prefix) {
      const s = need();
      const u = await newUser(s.baseUrl, prefix, INTEROP_PASSWORD);
      return peerUser(s.baseUrl, s.serverName, u.userId, u.token, u.deviceId);
    },
  };
}

/**
 * The last lines of both servers' logs, for a failure's message: what each side did with the
 * request that never arrived.
 */
export function peerLogs(peers: InteropPeer, atrium: AtriumPeer, chars = 4_000): string {
  let out = '';
  try {
    out += `${peers.logTail(chars)}\n`;
  } catch {
    out += `--- ${peers.kind} peer: not started ---\n`;
  }
  try {
    for (const p of atrium.server().processes) out += `--- atrium ${p.name} ---\n${p.output().slice(-chars)}\n`;
  } catch {
    out += '--- atrium: not started ---\n';
  }
  return out;
}

const enc = encodeURIComponent;

/** POST /join/{roomIdOrAlias} through `via` servers (`server_name` as in v1.11 and before, and `via` since v1.12). */
export async function joinVia(user: PeerUser, roomIdOrAlias: string, via: string[]): Promise<{ status: number; json: Json }> {
  const query = new URLSearchParams();
  for (const server of via) {
    query.append('server_name', server);
    query.append('via', server);
  }
  return user.api('POST', `/join/${enc(roomIdOrAlias)}?${query.toString()}`, {});
}

/** Creates a room as `user` (body as for POST /createRoom); expects 200 and answers its ID. */
export async function createRoom(user: PeerUser, body: Json = {}): Promise<string> {
  const res = await user.api('POST', '/createRoom', body);
  if (res.status !== 200) throw new Error(`createRoom on ${user.serverName}: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json.room_id as string;
}

/** Sends an m.text message; answers its event ID. */
export async function sendText(user: PeerUser, roomId: string, body: string): Promise<string> {
  const res = await user.api('PUT', `/rooms/${enc(roomId)}/send/m.room.message/${uniqueName('txn')}`, { msgtype: 'm.text', body });
  if (res.status !== 200) throw new Error(`send on ${user.serverName}: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json.event_id as string;
}

/** PUT a state event; answers its event ID. */
export async function putState(user: PeerUser, roomId: string, type: string, stateKey: string, content: Json): Promise<string> {
  const res = await user.api('PUT', `/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`, content);
  if (res.status !== 200) throw new Error(`state ${type} on ${user.serverName}: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json.event_id as string;
}

/** A state event's content as `user` sees it, or undefined when it has none (404) or cannot see it. */
export async function stateContent(user: PeerUser, roomId: string, type: string, stateKey = ''): Promise<Json | undefined> {
  const res = await user.api('GET', `/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`);
  return res.status === 200 ? res.json : undefined;
}

/** Waits until `user` sees the state event `type`/`stateKey` with content matching `check`; answers the content. */
export function waitForState(user: PeerUser, roomId: string, type: string, stateKey: string, check: (content: Json) => boolean, ms = FEDERATION_WAIT_MS): Promise<Json> {
  return waitWithLog(
    `${type}/${stateKey} in ${roomId} as seen by ${user.userId}`,
    async () => {
      const content = await stateContent(user, roomId, type, stateKey);
      return content && check(content) ? content : undefined;
    },
    ms,
    250,
  );
}

/** Waits until `user` sees `member` with `membership` in the room's state. */
export function waitForMembership(user: PeerUser, roomId: string, member: string, membership: string, ms = FEDERATION_WAIT_MS): Promise<Json> {
  return waitForState(user, roomId, 'm.room.member', member, (c) => c.membership === membership, ms);
}

/** The room's timeline as `user` reads it backwards from now through /messages (up to `limit` events). */
export async function messages(user: PeerUser, roomId: string, limit = 100): Promise<Json[]> {
  const res = await user.api('GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=${limit}`);
  return res.status === 200 ? ((res.json.chunk as Json[]) ?? []) : [];
}

/** Waits until an event matching `check` is in `user`'s /messages of the room; answers it. */
export function waitForEvent(user: PeerUser, roomId: string, what: string, check: (event: Json) => boolean, ms = FEDERATION_WAIT_MS): Promise<Json> {
  return waitWithLog(`${what} in ${roomId} as seen by ${user.userId}`, async () => (await messages(user, roomId)).find(check), ms, 250);
}

/**
 * Waits until `user`'s initial /sync lists the room under `section` (`invite`, `join`, `leave`);
 * answers that room's entry. Left rooms are in an initial sync only with `include_leave`.
 */
export function waitForSyncRoom(user: PeerUser, roomId: string, section: 'invite' | 'join' | 'leave', ms = FEDERATION_WAIT_MS): Promise<Json> {
  const filter = enc(JSON.stringify({ room: { include_leave: true, timeline: { limit: 10 } } }));
  return waitWithLog(
    `${roomId} in ${user.userId}'s /sync rooms.${section}`,
    async () => {
      const res = await user.api('GET', `/sync?timeout=0&filter=${filter}`);
      return res.status === 200 ? ((res.json.rooms?.[section]?.[roomId] as Json | undefined) ?? undefined) : undefined;
    },
    ms,
    250,
  );
}

/** The room's current state as `user` sees it: `type\0state_key` → event ID, for comparing servers. */
export async function stateIds(user: PeerUser, roomId: string): Promise<Map<string, string>> {
  const res = await user.api('GET', `/rooms/${enc(roomId)}/state`);
  if (res.status !== 200) throw new Error(`state of ${roomId} on ${user.serverName}: ${res.status} ${JSON.stringify(res.json)}`);
  return new Map((res.json as unknown as Json[]).map((e) => [`${e.type as string}\u0000${e.state_key as string}`, e.event_id as string]));
}

/** One of the two servers of an interop test, by name. */
export interface Side {
  /** 'Atrium' is the server under test, 'Peer' the other one (Synapse or a second Atrium). */
  name: 'Atrium' | 'Peer';
  serverName(): string;
  user(prefix: string): Promise<PeerUser>;
}

/** The two servers as sides, for scenarios written once and run in both directions. */
export function sides(peers: InteropPeer, atrium: AtriumPeer): Record<Side['name'], Side> {
  return {
    Atrium: { name: 'Atrium', serverName: () => atrium.server().serverName, user: (prefix) => atrium.user(prefix) },
    Peer: { name: 'Peer', serverName: () => peers.serverName(), user: (prefix) => peers.user(prefix) },
  };
}

/** [home, remote]: the room lives on `home` (created there), `remote`'s users come over federation. */
export const DIRECTIONS: ReadonlyArray<readonly [Side['name'], Side['name']]> = [
  ['Atrium', 'Peer'],
  ['Peer', 'Atrium'],
];

/**
 * A public room created on `home` by a new user, joined by a new user of `remote` through
 * federation (POST /join via home's server name); waits until each side sees the other's join.
 */
export async function federatedRoom(home: Side, remote: Side, createBody: Json = {}): Promise<{ roomId: string; owner: PeerUser; guest: PeerUser }> {
  const owner = await home.user('owner');
  const guest = await remote.user('guest');
  const roomId = await createRoom(owner, { preset: 'public_chat', ...createBody });
  const joined = await joinVia(guest, roomId, [home.serverName()]);
  if (joined.status !== 200) throw new Error(`${remote.name} user joining ${home.name}'s room: ${joined.status} ${JSON.stringify(joined.json)}`);
  await waitForMembership(owner, roomId, guest.userId, 'join');
  await waitForMembership(guest, roomId, owner.userId, 'join');
  return { roomId, owner, guest };
}
