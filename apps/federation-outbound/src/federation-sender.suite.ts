/**
 * federation-outbound against real parts: SQLite storage, the in-process bus,
 * the memory cache, the room writer of room-server producing the room output
 * log, and a real HTTPS server on 127.0.0.1 (certificate from the test CA)
 * playing the destination and recording every PUT /send it gets.
 *
 * The FederationClient used is a plain HTTPS client trusting the test CA
 * (unsigned requests: the recording server checks no X-Matrix). It stands in
 * for libs/federation-client's client, which is built at the same time; the
 * sender depends only on the FederationClient interface.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus } from '@atrium/bus';
import { MemoryCache } from '@atrium/cache';
import {
  FEDERATION_ORIGIN_SEEN_SUBJECT,
  FederationHttpError,
  FederationUnreachableError,
  OUTGOING_EDU_STREAM,
  OUTGOING_EDU_SUBJECT,
  type FederationClient,
  type FederationRequest,
  type OutgoingEdu,
} from '@atrium/federation-client';
import { generateSigningKey, type JsonObject, type RoomEvent } from '@atrium/matrix';
import { RoomStore } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import { initTelemetry, type Telemetry } from '@atrium/telemetry';
import { createTestCa, type TestCa } from '../../../tools/test-servers/test-ca';
import { startOtlpReceiver, type OtlpReceiver } from '../../../tools/test-servers/otlp-receiver';
import { RoomWriter } from '../../room-server/src/room-writer';
import { FederationSender, MAX_PDUS_PER_TXN } from './federation-sender';
import { OutboundStore } from './outbound-store';

const SERVER = 'out.test';
const alice = `@alice:${SERVER}`;
const key = generateSigningKey('o1');

interface Received {
  txnId: string;
  body: JsonObject;
  at: number;
}

/** The destination: an HTTPS server recording transactions; `failures` answers 500 that many times first. */
class Destination {
  readonly received: Received[] = [];
  failures = 0;
  attempts: Array<{ txnId: string; at: number; status: number }> = [];
  inFlight = 0;
  maxInFlight = 0;
  private server?: Server;
  port = 0;

  constructor(private readonly tls: { certPath: string; keyPath: string }) {}

  get name(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<void> {
    const server = createServer({ cert: readFileSync(this.tls.certPath), key: readFileSync(this.tls.keyPath) }, (req, res) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (text += chunk));
      req.on('end', () => {
        const match = /^\/_matrix\/federation\/v1\/send\/([^/?]+)$/.exec(req.url ?? '');
        if (req.method !== 'PUT' || !match) {
          res.writeHead(404, { 'content-type': 'application/json' }).end('{"errcode":"M_UNRECOGNIZED"}');
          return;
        }
        const txnId = decodeURIComponent(match[1]);
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        // A little latency, so overlapping transactions would be seen.
        setTimeout(() => {
          this.inFlight--;
          const status = this.failures > 0 ? 500 : 200;
          this.attempts.push({ txnId, at: Date.now(), status });
          if (status === 500) {
            this.failures--;
            res.writeHead(500, { 'content-type': 'application/json' }).end('{"errcode":"M_UNKNOWN","error":"try later"}');
            return;
          }
          this.received.push({ txnId, body: JSON.parse(text) as JsonObject, at: Date.now() });
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"pdus":{}}');
        }, 5);
      });
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  pdus(): RoomEvent[] {
    return this.received.flatMap((r) => (r.body['pdus'] as unknown as RoomEvent[]) ?? []);
  }

  edus(): Array<{ edu_type: string; content: JsonObject }> {
    return this.received.flatMap((r) => (r.body['edus'] as unknown as Array<{ edu_type: string; content: JsonObject }>) ?? []);
  }
}

/** HTTPS JSON requests trusting the test CA (see the file comment). */
function testClient(caPath: string): FederationClient {
  const ca = readFileSync(caPath);
  return {
    request<T>(req: FederationRequest): Promise<T> {
      const body = req.body === undefined ? undefined : JSON.stringify(req.body);
      return new Promise<T>((resolve, reject) => {
        const r = request(
          `https://${req.destination}${req.path}`,
          { method: req.method, ca, headers: body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}, timeout: req.timeoutMs ?? 5000 },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => {
              const json = text ? (JSON.parse(text) as JsonObject) : {};
              const status = res.statusCode ?? 0;
              if (status >= 200 && status < 300) resolve(json as T);
              else reject(new FederationHttpError(req.destination, status, json['errcode'] as string | undefined, json, `HTTP ${status}`));
            });
          },
        );
        r.on('timeout', () => r.destroy(new Error('timeout')));
        r.on('error', (err) => reject(new FederationUnreachableError(req.destination, 'connect', err.message)));
        if (body) r.write(body);
        r.end();
      });
    },
  };
}

async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * The cases, on one storage adapter: `openStore` opens a fresh, empty store
 * for each test (SQLite in a temporary directory, or a new FerretDB database).
 */
export function describeFederationSender(label: string, openStore: (dir: string) => Promise<DocumentStore>): void {
describe(`FederationSender (${label})`, () => {
    // FerretDB answers each query in milliseconds: a test writes and sends up to 120 events.
    jest.setTimeout(60_000);
  let ca: TestCa;
  let tls: { certPath: string; keyPath: string };
  let otlp: OtlpReceiver;
  let telemetry: Telemetry;
  let dir: string;
  let store: DocumentStore;
  let rooms: RoomStore;
  let bus: InProcessBus;
  let cache: MemoryCache;
  let writer: RoomWriter;
  let destination: Destination;
  let senders: FederationSender[];

  beforeAll(async () => {
    ca = createTestCa();
    tls = ca.issue(['127.0.0.1']);
    otlp = await startOtlpReceiver();
    telemetry = initTelemetry({ serviceName: 'federation-outbound-spec', logLevel: 'silent', otlpEndpoint: otlp.url, exportDelayMs: 50 });
  });

  afterAll(async () => {
    await telemetry.shutdown();
    await otlp.stop();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-fedout-'));
    store = await openStore(dir);
    rooms = await RoomStore.open(store);
    bus = new InProcessBus();
    cache = new MemoryCache();
    writer = new RoomWriter(rooms, bus, { serverName: SERVER, signingKey: key, cache });
    destination = new Destination(tls);
    await destination.start();
    senders = [];
  });

  afterEach(async () => {
    for (const s of senders) await s.stop();
    await destination.stop();
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function startSender(extra: Partial<ConstructorParameters<typeof FederationSender>[0]> = {}): Promise<FederationSender> {
    const sender = new FederationSender({
      store,
      bus,
      cache,
      telemetry,
      serverName: SERVER,
      client: testClient(ca.certPath),
      minBackoffMs: 100,
      maxBackoffMs: 800,
      pollMs: 50,
      ...extra,
    });
    senders.push(sender);
    return sender.start().then(() => sender);
  }

  /** A room created by alice, with `remoteUser` joined (their join stored as the federation input would). */
  async function roomWithRemoteMember(remoteUser: string): Promise<string> {
    const { room_id } = await writer.createRoom({
      sender: alice,
      room_version: '10',
      creation_content: {},
      visibility: 'private',
      events: [
        { type: 'm.room.member', state_key: alice, content: { membership: 'join' } },
        { type: 'm.room.power_levels', state_key: '', content: { users: { [alice]: 100 } } },
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } },
      ],
    });
    const join: RoomEvent = {
      event_id: `$join-${remoteUser.replace(/[^a-z0-9]/gi, '')}`,
      room_id,
      type: 'm.room.member',
      state_key: remoteUser,
      sender: remoteUser,
      content: { membership: 'join' },
      origin_server_ts: Date.now(),
      depth: 10,
      prev_events: [],
      auth_events: [],
      hashes: { sha256: 'x' },
      signatures: {},
    } as unknown as RoomEvent;
    await rooms.streams.withPosition('events', async (stream) => {
      await rooms.insertEvent({ event: join, stream });
      await rooms.setCurrentState(join, stream);
      await rooms.setMembership(join, stream);
    });
    return room_id;
  }

  async function send(roomId: string, n: number, prefix = 'm'): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push((await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: `${prefix}${i}` } })).event_id);
    return ids;
  }

  it('sends each local event once, in order, at most 50 PDUs per transaction, one transaction in flight', async () => {
    const roomId = await roomWithRemoteMember(`@bob:${destination.name}`);
    const ids = await send(roomId, 120);
    await startSender();
    await waitFor(() => destination.pdus().length >= 120, 15_000, '120 PDUs');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const got = destination.pdus();
    expect(got.map((p) => p.event_id ?? '')).toHaveLength(120);
    // Room version 10: the wire PDU has no event_id; compare by content order.
    expect(got.map((p) => (p.content as { body: string }).body)).toEqual(ids.map((_, i) => `m${i}`));
    expect(got.every((p) => p.room_id === roomId && p.sender === alice && p.event_id === undefined)).toBe(true);
    expect(destination.received.every((r) => (r.body['pdus'] as unknown[]).length <= MAX_PDUS_PER_TXN)).toBe(true);
    expect(destination.received.length).toBeGreaterThanOrEqual(3);
    expect(destination.received.every((r) => r.body['origin'] === SERVER)).toBe(true);
    expect(destination.maxInFlight).toBe(1);
    // The remote join was not sent back, and the creation events (before anyone remote was joined) went nowhere.
    expect(got.some((p) => p.type === 'm.room.create' || p.sender !== alice)).toBe(false);
    expect(await (await OutboundStore.shared(store)).depth(destination.name)).toBe(0);
  });

  it('retries after 500s with a doubling backoff and the same transaction ID, then records the success', async () => {
    const roomId = await roomWithRemoteMember(`@bob:${destination.name}`);
    destination.failures = 3;
    await send(roomId, 2);
    await startSender();
    await waitFor(() => destination.attempts.length >= 1, 15_000, 'a first attempt');
    // Queued while the first transaction is outstanding: they wait for its 200 (transactions.yaml).
    await send(roomId, 2, 'later');
    await waitFor(() => destination.pdus().length >= 4, 15_000, 'delivery after failures');
    const attempts = destination.attempts;
    expect(attempts.map((a) => a.status).slice(0, 4)).toEqual([500, 500, 500, 200]);
    const gaps = attempts.slice(1, 4).map((a, i) => a.at - attempts[i].at);
    // 100 ms, 200 ms, 400 ms (each measured between answers, so a little less is allowed for the request's own time).
    expect(gaps[0]).toBeGreaterThanOrEqual(80);
    expect(gaps[1]).toBeGreaterThanOrEqual(180);
    expect(gaps[2]).toBeGreaterThanOrEqual(380);
    // The same transaction, with the same ID and rows, until it is answered 200; the later events after it.
    expect(new Set(attempts.slice(0, 4).map((a) => a.txnId)).size).toBe(1);
    expect(destination.received[0].txnId).toBe(attempts[0].txnId);
    expect((destination.received[0].body['pdus'] as RoomEvent[]).map((p) => (p.content as { body: string }).body)).toEqual(['m0', 'm1']);
    expect(destination.pdus().map((p) => (p.content as { body: string }).body)).toEqual(['m0', 'm1', 'later0', 'later1']);
    expect(destination.received[1].txnId).not.toBe(attempts[0].txnId);
    // The depth is set last, after the success is recorded.
    await waitFor(async () => (await telemetry.metricsText()).body.includes(`atrium_federation_queue_depth{destination="${destination.name}"} 0`), 10_000, 'depth 0');
    const metrics = (await telemetry.metricsText()).body;
    expect(metrics).toContain(`atrium_federation_retries_total{destination="${destination.name}"} 3`);
    expect(metrics).toMatch(new RegExp(`atrium_federation_last_success_timestamp_seconds\\{destination="${destination.name.replace(/\./g, '\\.')}"\\} \\d{10}`));
    const outbound = await OutboundStore.shared(store);
    expect((await outbound.destinations.get(destination.name))?.backoff_ms).toBe(0);
  });

  it('catches up after the destination comes back, and collapses a long backlog to the newest event per room', async () => {
    const roomA = await roomWithRemoteMember(`@bob:${destination.name}`);
    const roomB = await roomWithRemoteMember(`@carol:${destination.name}`);
    const port = destination.port;
    await destination.stop();
    await startSender({ catchUpThreshold: 20 });
    await send(roomA, 3, 'a');
    const outbound = await OutboundStore.shared(store);
    await waitFor(async () => ((await outbound.destinations.get(`127.0.0.1:${port}`))?.retries ?? 0) >= 1, 10_000, 'a failed attempt');
    // The depth gauge shows the backlog while the destination is away.
    await waitFor(async () => (await telemetry.metricsText()).body.includes(`atrium_federation_queue_depth{destination="127.0.0.1:${port}"} 3`), 10_000, 'depth 3');
    // Back soon: everything missed is sent, in order.
    await destination.start(port);
    await waitFor(() => destination.pdus().length >= 3, 10_000, 'catch-up');
    expect(destination.pdus().map((p) => (p.content as { body: string }).body)).toEqual(['a0', 'a1', 'a2']);

    // Away long enough for more than the threshold: the newest event of each room only.
    await destination.stop();
    await send(roomA, 15, 'x');
    await send(roomB, 10, 'y');
    await waitFor(async () => ((await outbound.destinations.get(`127.0.0.1:${port}`))?.retries ?? 0) >= 1, 10_000, 'a failed attempt');
    // Every event queued (the log walked to its end) before the destination returns.
    await waitFor(async () => (await outbound.cursor()) >= (await rooms.safeStreamPosition()), 10_000, 'the log walked');
    // Collapsed to the newest of each room while still away. Without this wait, an attempt that collapsed
    // before y9 was queued could still be under way when the destination returns, and deliver y8 too.
    await waitFor(async () => (await outbound.pdus.count({ destination: `127.0.0.1:${port}` })) === 2, 10_000, 'the backlog collapsed');
    await destination.start(port);
    await waitFor(() => destination.pdus().length >= 5, 10_000, 'collapsed catch-up');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(destination.pdus().slice(3).map((p) => (p.content as { body: string }).body).sort()).toEqual(['x14', 'y9']);
  });

  it('keeps collapsing what is queued while the destination stays away after a collapse', async () => {
    const roomA = await roomWithRemoteMember(`@bob:${destination.name}`);
    const roomB = await roomWithRemoteMember(`@carol:${destination.name}`);
    const port = destination.port;
    const name = `127.0.0.1:${port}`;
    await destination.stop();
    await startSender({ catchUpThreshold: 20 });
    await send(roomA, 15, 'x');
    await send(roomB, 10, 'y');
    const outbound = await OutboundStore.shared(store);
    await waitFor(async () => (await outbound.cursor()) >= (await rooms.safeStreamPosition()), 10_000, 'the log walked');
    // A retry while still away collapses the 25 queued PDUs to the newest of each room.
    await waitFor(async () => (await outbound.depth(name)) === 2, 10_000, 'collapsed while away');
    expect((await outbound.destinations.get(name))?.catching_up).toBe(true);
    // Fewer than the threshold arrive afterwards: still the newest of each room only, as the outage goes on.
    await send(roomB, 3, 'z');
    await waitFor(async () => (await outbound.cursor()) >= (await rooms.safeStreamPosition()), 10_000, 'the log walked again');
    await destination.start(port);
    await waitFor(() => destination.pdus().length >= 2, 10_000, 'catch-up');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(destination.pdus().map((p) => (p.content as { body: string }).body).sort()).toEqual(['x14', 'z2']);
    // The first success ends the catch-up: what follows is sent one by one again.
    await waitFor(async () => (await outbound.destinations.get(name))?.catching_up === false, 10_000, 'catch-up ended');
    await send(roomA, 2, 'after');
    await waitFor(() => destination.pdus().length >= 4, 10_000, 'later events');
    expect(destination.pdus().slice(2).map((p) => (p.content as { body: string }).body)).toEqual(['after0', 'after1']);
  });

  it('retries a destination at once when it is seen again (federation.origin.seen), not at the end of its backoff', async () => {
    const roomId = await roomWithRemoteMember(`@bob:${destination.name}`);
    const port = destination.port;
    await destination.stop();
    // A long backoff: without the notification the retry would come after the test's deadline.
    await startSender({ minBackoffMs: 60_000, maxBackoffMs: 60_000 });
    await send(roomId, 2, 'w');
    const outbound = await OutboundStore.shared(store);
    await waitFor(async () => ((await outbound.destinations.get(`127.0.0.1:${port}`))?.retries ?? 0) >= 1, 10_000, 'a failed attempt');
    await destination.start(port);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(destination.pdus()).toHaveLength(0);
    await bus.notify(FEDERATION_ORIGIN_SEEN_SUBJECT, { server_name: destination.name });
    await waitFor(() => destination.pdus().length >= 2, 5000, 'delivery after the wake-up');
  });

  it('resumes after a restart without losing or repeating events', async () => {
    const roomId = await roomWithRemoteMember(`@bob:${destination.name}`);
    const port = destination.port;
    await destination.stop();
    const first = await startSender();
    await send(roomId, 30, 'r');
    const outbound = await OutboundStore.shared(store);
    await waitFor(async () => (await outbound.depth(`127.0.0.1:${port}`)) === 30, 10_000, 'queued');
    await first.stop();
    await destination.start(port);
    // A new process over the same storage (its cache is new too: the old process's claims died with it).
    cache = new MemoryCache();
    await startSender();
    await send(roomId, 5, 's');
    await waitFor(() => destination.pdus().length >= 35, 15_000, 'all 35');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const bodies = destination.pdus().map((p) => (p.content as { body: string }).body);
    expect(bodies).toEqual([...Array.from({ length: 30 }, (_, i) => `r${i}`), ...Array.from({ length: 5 }, (_, i) => `s${i}`)]);
  });

  it('two replicas never send one queue twice', async () => {
    const roomId = await roomWithRemoteMember(`@bob:${destination.name}`);
    await Promise.all([startSender(), startSender()]);
    await send(roomId, 80);
    await waitFor(() => destination.pdus().length >= 80, 15_000, '80 PDUs');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const bodies = destination.pdus().map((p) => (p.content as { body: string }).body);
    expect(bodies).toEqual(Array.from({ length: 80 }, (_, i) => `m${i}`));
    expect(destination.maxInFlight).toBe(1);
  });

  it('sends EDUs from OUTGOING_EDU_STREAM to the servers of a room, with PDUs, and traces each transaction', async () => {
    const roomId = await roomWithRemoteMember(`@bob:${destination.name}`);
    await startSender();
    await bus.ensureStream({ name: OUTGOING_EDU_STREAM, subjects: [OUTGOING_EDU_SUBJECT] });
    const typing: OutgoingEdu = { edu_type: 'm.typing', content: { room_id: roomId, user_id: alice, typing: true }, room_id: roomId };
    await bus.publish(OUTGOING_EDU_SUBJECT, typing);
    await bus.publish(OUTGOING_EDU_SUBJECT, { edu_type: 'm.direct_to_device', content: { sender: alice, type: 't', message_id: 'm1', messages: {} }, destinations: [destination.name, SERVER] });
    await waitFor(() => destination.edus().length >= 2, 10_000, 'EDUs');
    expect(destination.edus()).toEqual([
      { edu_type: 'm.typing', content: { room_id: roomId, user_id: alice, typing: true } },
      { edu_type: 'm.direct_to_device', content: { sender: alice, type: 't', message_id: 'm1', messages: {} } },
    ]);
    // m.device_list_update gets this server's stream_id, and prev_id naming the one before it for the same user.
    await bus.publish(OUTGOING_EDU_SUBJECT, { edu_type: 'm.device_list_update', content: { user_id: alice, device_id: 'D1', deleted: true }, user_id: alice });
    await bus.publish(OUTGOING_EDU_SUBJECT, { edu_type: 'm.device_list_update', content: { user_id: alice, device_id: 'D2', deleted: true }, user_id: alice });
    await waitFor(() => destination.edus().length >= 4, 10_000, 'device list EDUs');
    const [first, second] = destination.edus().slice(2).map((e) => e.content);
    expect(first).toMatchObject({ user_id: alice, device_id: 'D1', prev_id: [] });
    expect(second).toMatchObject({ user_id: alice, device_id: 'D2', prev_id: [first['stream_id']] });
    expect(second['stream_id'] as number).toBeGreaterThan(first['stream_id'] as number);
    // The event is written inside a span (as room-server's bus handler is): the transaction span links to it.
    const { messageId, writeSpan } = await telemetry.withSpan('test.write', {}, async (span) => ({
      messageId: (await send(roomId, 1))[0],
      writeSpan: span.spanContext(),
    }));
    await waitFor(() => destination.pdus().length >= 1, 10_000, 'PDU');
    const txn = destination.received[destination.received.length - 1];
    await telemetry.flush();
    const spans = await otlp.waitFor((all) => all.some((s) => s.name === 'federation.transaction.send' && s.attributes['matrix.txn_id'] === txn.txnId), 5000);
    const span = spans.find((s) => s.attributes['matrix.txn_id'] === txn.txnId);
    expect(span?.attributes['matrix.destination']).toBe(destination.name);
    expect(span?.attributes['matrix.event_ids']).toEqual([messageId]);
    expect(span?.links).toEqual([expect.objectContaining({ traceId: writeSpan.traceId, spanId: writeSpan.spanId })]);
  });
});
}
