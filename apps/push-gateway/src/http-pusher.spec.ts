import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PushEvaluation, RoomEvent } from '@atrium/matrix';
import type { PusherRecord } from '@atrium/push';
import { badgeBody, notificationBody, PUSH_ATTEMPTS, sendToPusher } from './http-pusher';

/** A real HTTP server standing as the push gateway peer; `answers` are played in order, then 200 {}. */
async function gateway(answers: Array<{ status: number; body?: unknown }>): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const answer = answers[hits] ?? { status: 200, body: {} };
      hits += 1;
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body ?? {}));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/_matrix/push/v1/notify`, hits: () => hits, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const pusher = (data: Record<string, unknown>): PusherRecord => ({
  _id: 'x',
  user_id: '@bob:test',
  app_id: 'org.example.app',
  pushkey: 'pk',
  kind: 'http',
  app_display_name: 'App',
  device_display_name: 'Phone',
  profile_tag: null,
  lang: 'en',
  data: JSON.stringify(data),
  pushkey_ts: 1700000000,
});

const event = { event_id: '$e', room_id: '!r:test', type: 'm.room.message', sender: '@alice:test', content: { body: 'hi', msgtype: 'm.text' } } as unknown as RoomEvent;
const evaluation: PushEvaluation = { rule: { kind: 'override', rule_id: '.m.rule.is_user_mention' }, actions: [], notify: true, highlight: true, tweaks: { sound: 'default', highlight: true } };
const details = { event, evaluation, userId: '@bob:test', senderDisplayName: 'Alice', roomName: 'Room', roomAlias: null, unread: 3 };

describe('the push gateway request (push_notifier.yaml)', () => {
  it('carries the event fields, counts and the device with data minus url', () => {
    const body = notificationBody(pusher({ url: 'https://gw/_matrix/push/v1/notify', custom: 1 }), details);
    expect(body.notification).toEqual({
      event_id: '$e',
      room_id: '!r:test',
      type: 'm.room.message',
      sender: '@alice:test',
      sender_display_name: 'Alice',
      room_name: 'Room',
      prio: 'high',
      content: { body: 'hi', msgtype: 'm.text' },
      counts: { unread: 3 },
      devices: [{ app_id: 'org.example.app', pushkey: 'pk', pushkey_ts: 1700000000, data: { custom: 1 }, tweaks: { sound: 'default', highlight: true } }],
    });
  });
  it('event_id_only leaves out the event fields; zero counts are omitted; no sound and no highlight is low priority', () => {
    const body = notificationBody(pusher({ url: 'u', format: 'event_id_only' }), { ...details, unread: 0, evaluation: { ...evaluation, highlight: false, tweaks: {} } });
    expect(body.notification).toEqual({
      event_id: '$e',
      room_id: '!r:test',
      prio: 'low',
      counts: {},
      devices: [{ app_id: 'org.example.app', pushkey: 'pk', pushkey_ts: 1700000000, data: { format: 'event_id_only' }, tweaks: {} }],
    });
  });
});

describe('badge updates', () => {
  it('carry the counts and the device only, unread even at zero', () => {
    expect(badgeBody(pusher({ url: 'u', x: 1 }), 0)).toEqual({
      notification: { prio: 'low', counts: { unread: 0 }, devices: [{ app_id: 'org.example.app', pushkey: 'pk', pushkey_ts: 1700000000, data: { x: 1 } }] },
    });
  });
});

describe('sendToPusher', () => {
  it('retries 5xx and returns the rejected pushkeys', async () => {
    const gw = await gateway([{ status: 503 }, { status: 200, body: { rejected: ['pk', 7] } }]);
    try {
      expect(await sendToPusher(gw.url, {})).toEqual({ delivered: true, rejected: ['pk'] });
      expect(gw.hits()).toBe(2);
    } finally {
      await gw.close();
    }
  });
  it('gives up after a bounded number of attempts, and at once on a 4xx', async () => {
    const down = await gateway(Array.from({ length: 10 }, () => ({ status: 500 })));
    try {
      expect(await sendToPusher(down.url, {})).toEqual({ delivered: false, reason: 'HTTP 500' });
      expect(down.hits()).toBe(PUSH_ATTEMPTS);
    } finally {
      await down.close();
    }
    const bad = await gateway([{ status: 400 }]);
    try {
      expect(await sendToPusher(bad.url, {})).toEqual({ delivered: false, reason: 'HTTP 400' });
      expect(bad.hits()).toBe(1);
    } finally {
      await bad.close();
    }
  }, 15_000);
  it('reports a connection failure', async () => {
    const gw = await gateway([]);
    const url = gw.url;
    await gw.close();
    const outcome = await sendToPusher(url, {});
    expect(outcome.delivered).toBe(false);
  }, 15_000);
});
