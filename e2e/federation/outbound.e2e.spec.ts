/**
 * Federation out and EDUs between two real Atrium servers over TLS on
 * 127.0.0.1 (docs/federation-design.md "Outbound"; server-server-api
 * "Transactions", "Typing Notifications", "Receipts", "Send-to-device
 * messaging", "Presence"). Server A hosts the room; a user of B joins it;
 * then PDUs and EDUs cross in PUT /send both ways and show in /sync.
 */
import { generateSigningKey, signJson } from '@atrium/matrix';
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { eventually, newUser, rawApi, rawSync, REGISTER_BURST_ENV, type Json, type TestUser } from '../support/fixtures';
import { startTestServer, type Mode, type TestServer } from '../support/servers';

const PASSWORD = 'pw-fedout-123';
const WAIT_MS = 30_000;
const enc = encodeURIComponent;

const modes = (process.env.ATRIUM_FEDERATION_MODES ?? 'embedded').split(',').map((m) => m.trim()) as Mode[];

describe.each(modes)('federation out and EDUs between two Atrium servers (%s mode)', (mode) => {
  let ca: TestCa;
  let a: TestServer;
  let b: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;

  const api = (server: TestServer, user: TestUser, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> =>
    rawApi(server.baseUrl, user.token, method, path, body);

  beforeAll(async () => {
    ca = createTestCa();
    const options = { federationTls: ca, env: REGISTER_BURST_ENV };
    [a, b] = await Promise.all([startTestServer(mode, options), startTestServer(mode, options)]);
    alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    bob = await newUser(b.baseUrl, 'bob', PASSWORD);
    const created = await api(a, alice, 'POST', '/createRoom', { preset: 'public_chat', name: 'Outbound' });
    expect(created.status).toBe(200);
    roomId = created.json.room_id as string;
    const joined = await api(b, bob, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    expect(joined.status).toBe(200);
  }, 300_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  /** The room's timeline messages as `user` syncs them on `server` (a full sync, so everything since the join). */
  async function bodies(server: TestServer, user: TestUser): Promise<string[]> {
    const s = await rawSync(server.baseUrl, user.token, { filter: JSON.stringify({ room: { timeline: { limit: 200 } } }) });
    return ((s.rooms?.join?.[roomId]?.timeline?.events ?? []) as Json[]).filter((e) => e.type === 'm.room.message').map((e) => e.content.body as string);
  }

  it('60 messages from A reach B in order (more than one transaction), and B answers', async () => {
    const sent: string[] = [];
    for (let i = 0; i < 60; i++) {
      const body = `burst ${i}`;
      const res = await api(a, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/burst${i}`, { msgtype: 'm.text', body });
      expect(res.status).toBe(200);
      sent.push(body);
    }
    const seen = await eventually(
      'all 60 on B',
      async () => {
        const got = (await bodies(b, bob)).filter((x) => x.startsWith('burst '));
        return got.length >= 60 ? got : undefined;
      },
      WAIT_MS,
      200,
    );
    expect(seen).toEqual(sent);
    expect((await api(b, bob, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/reply`, { msgtype: 'm.text', body: 'reply from B' })).status).toBe(200);
    await eventually('B reply on A', async () => ((await bodies(a, alice)).includes('reply from B') ? true : undefined), WAIT_MS, 200);
  });

  it('typing on A shows in the room on B (m.typing), and stops', async () => {
    // A full sync: the room's current typing list (no m.typing event when nobody types).
    const typingOnB = async (): Promise<string[]> => {
      const s = await rawSync(b.baseUrl, bob.token);
      const typing = ((s.rooms?.join?.[roomId]?.ephemeral?.events ?? []) as Json[]).find((e) => e.type === 'm.typing');
      return typing ? (typing.content.user_ids as string[]) : [];
    };
    expect((await api(a, alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 20_000 })).status).toBe(200);
    await eventually('alice typing on B', async () => ((await typingOnB()).includes(alice.userId) ? true : undefined), WAIT_MS, 200);
    expect((await api(a, alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: false })).status).toBe(200);
    await eventually('alice stopped on B', async () => (!(await typingOnB()).includes(alice.userId) ? true : undefined), WAIT_MS, 200);

    // A timeout on A ends the typing on B as well: A sends the stop (B alone would keep it for its own 60 s).
    expect((await api(a, alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 1000 })).status).toBe(200);
    await eventually('alice typing again on B', async () => ((await typingOnB()).includes(alice.userId) ? true : undefined), WAIT_MS, 100);
    // Well within B's own 60 s timeout for remote typing (REMOTE_TYPING_TIMEOUT_MS), so only A's stop can end it in time.
    await eventually('the timed-out stop on B', async () => (!(await typingOnB()).includes(alice.userId) ? true : undefined), 20_000, 200);
  });

  it('a read receipt on B reaches A (m.receipt)', async () => {
    const sent = await api(a, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/toread`, { msgtype: 'm.text', body: 'read me' });
    const eventId = sent.json.event_id as string;
    await eventually('the message on B', async () => ((await bodies(b, bob)).includes('read me') ? true : undefined), WAIT_MS, 200);
    expect((await api(b, bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {})).status).toBe(200);
    const receiptOnA = async (): Promise<Json | undefined> => {
      const s = await rawSync(a.baseUrl, alice.token);
      const receipts = ((s.rooms?.join?.[roomId]?.ephemeral?.events ?? []) as Json[]).filter((e) => e.type === 'm.receipt');
      return receipts.find((r) => r.content?.[eventId]?.['m.read']?.[bob.userId]);
    };
    const receipt = await eventually('bob receipt on A', receiptOnA, WAIT_MS, 200);
    expect(typeof receipt.content[eventId]['m.read'][bob.userId].ts).toBe('number');
  });

  it('presence set on A shows for the user of B sharing the room (m.presence)', async () => {
    expect((await api(a, alice, 'PUT', `/presence/${enc(alice.userId)}/status`, { presence: 'online', status_msg: 'federating' })).status).toBe(200);
    const presence = await eventually(
      'alice presence on B',
      async () => {
        const res = await api(b, bob, 'GET', `/presence/${enc(alice.userId)}/status`);
        return res.status === 200 && res.json.status_msg === 'federating' ? res.json : undefined;
      },
      WAIT_MS,
      200,
    );
    expect(presence).toMatchObject({ presence: 'online', status_msg: 'federating' });
    expect(typeof presence.last_active_ago).toBe('number');
    const s = await rawSync(b.baseUrl, bob.token);
    const event = ((s.presence?.events ?? []) as Json[]).find((e) => e.sender === alice.userId);
    expect(event?.content).toMatchObject({ presence: 'online', status_msg: 'federating' });
  });

  it('device keys uploaded on B reach A (m.device_list_update): bob in device_lists.changed, then in /keys/query', async () => {
    const first = await rawSync(a.baseUrl, alice.token);
    const since = first.next_batch as string;
    const deviceKey = generateSigningKey(bob.deviceId);
    const deviceKeys = signJson(
      { user_id: bob.userId, device_id: bob.deviceId, algorithms: ['m.olm.v1.curve25519-aes-sha2'], keys: { [deviceKey.keyId]: deviceKey.publicKeyBase64, [`curve25519:${bob.deviceId}`]: 'Y3VydmU' } },
      bob.userId,
      deviceKey,
    );
    expect((await api(b, bob, 'POST', '/keys/upload', { device_keys: deviceKeys })).status).toBe(200);
    let token = since;
    await eventually(
      'bob in device_lists.changed on A',
      async () => {
        const s = await rawSync(a.baseUrl, alice.token, { since: token, timeout: 0 });
        token = s.next_batch as string;
        return ((s.device_lists?.changed ?? []) as string[]).includes(bob.userId) ? true : undefined;
      },
      WAIT_MS,
      200,
    );
    const query = await api(a, alice, 'POST', '/keys/query', { device_keys: { [bob.userId]: [] } });
    expect(query.status).toBe(200);
    expect(query.json.device_keys?.[bob.userId]?.[bob.deviceId]?.keys?.[deviceKey.keyId]).toBe(deviceKey.publicKeyBase64);
  });

  it('a to-device message from A to a device of B arrives in its /sync (m.direct_to_device)', async () => {
    const res = await api(a, alice, 'PUT', `/sendToDevice/org.example.ping/td1`, { messages: { [bob.userId]: { [bob.deviceId]: { hello: 'bob' } } } });
    expect(res.status).toBe(200);
    let since: string | undefined;
    const event = await eventually(
      'to-device on B',
      async () => {
        const s = await rawSync(b.baseUrl, bob.token, since ? { since, timeout: 0 } : {});
        since = s.next_batch as string;
        return ((s.to_device?.events ?? []) as Json[]).find((e) => e.type === 'org.example.ping');
      },
      WAIT_MS,
      200,
    );
    expect(event).toEqual({ sender: alice.userId, type: 'org.example.ping', content: { hello: 'bob' } });
  });
});
