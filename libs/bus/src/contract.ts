/**
 * The behaviour every Bus adapter must show (port.ts), as Jest tests. Each
 * adapter's spec calls `busContract` with a way to reach one bus "world"
 * (one NATS server, or one in-process bus); `connect()` returns a client of
 * that world, standing for one service process.
 */
import { BusRemoteError, BusTimeoutError, type Bus, type BusMessage, type StreamMessage, type Subscription } from './port';

export interface BusWorld {
  /** A client of the shared world (a separate connection where the adapter has connections). */
  connect(): Promise<Bus>;
  stop(): Promise<void>;
}

export interface BusContractOptions {
  /** Called once before the suite. */
  start(): Promise<BusWorld>;
}

const WAIT_LIMIT_MS = 10_000;

/** Polls `condition` every 10 ms until true; fails after `limitMs`. */
async function waitFor(what: string, condition: () => boolean, limitMs = WAIT_LIMIT_MS): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 10));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

export function busContract(adapter: string, options: BusContractOptions): void {
  describe(`Bus contract: ${adapter}`, () => {
    jest.setTimeout(30_000);
    let world: BusWorld;
    let opened: Bus[] = [];
    let subscriptions: Subscription[] = [];
    let serial = 0;
    /** A name unique to the test, so tests sharing one server never see each other's messages. */
    let unique: (prefix: string) => string;

    const connect = async (): Promise<Bus> => {
      const bus = await world.connect();
      opened.push(bus);
      return bus;
    };
    const track = (subscription: Subscription): Subscription => {
      subscriptions.push(subscription);
      return subscription;
    };

    beforeAll(async () => {
      world = await options.start();
    });
    afterAll(async () => {
      await world?.stop();
    });
    beforeEach(() => {
      serial++;
      const tag = `t${serial}${Math.random().toString(36).slice(2, 7)}`;
      unique = (prefix) => `${prefix}${tag}`;
    });
    afterEach(async () => {
      await Promise.all(subscriptions.map((s) => s.unsubscribe()));
      subscriptions = [];
      await Promise.all(opened.map((b) => b.close()));
      opened = [];
    });

    describe('request/handle', () => {
      it('answers a request with the handler result, passing subject, data and headers', async () => {
        const server = await connect();
        const client = await connect();
        const subject = unique('rpc.echo.');
        const seen: Array<BusMessage<{ n: number; tags: string[] }>> = [];
        track(
          await server.handle<{ n: number; tags: string[] }, { doubled: number; tags: string[] }>(subject, async (message) => {
            seen.push(message);
            message.data.tags.push('mutated by handler');
            return { doubled: message.data.n * 2, tags: message.data.tags };
          }),
        );
        const sent = { n: 21, tags: ['a'] };
        const answer = await client.request<typeof sent, { doubled: number; tags: string[] }>(subject, sent, {
          headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-custom': 'v' },
        });
        expect(answer).toEqual({ doubled: 42, tags: ['a', 'mutated by handler'] });
        // The handler got its own copy: the sender's object is untouched.
        expect(sent.tags).toEqual(['a']);
        expect(seen).toHaveLength(1);
        expect(seen[0].subject).toBe(subject);
        expect(seen[0].headers).toMatchObject({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-custom': 'v' });
      });

      it('returns undefined from a handler that returns nothing and JSON semantics for values', async () => {
        const bus = await connect();
        const subject = unique('rpc.void.');
        track(await bus.handle<unknown, void>(subject, async () => undefined));
        await expect(bus.request(subject, null)).resolves.toBeUndefined();
        const shape = unique('rpc.shape.');
        track(await bus.handle<unknown, unknown>(shape, async (m) => m.data));
        const when = new Date('2024-01-02T03:04:05.000Z');
        await expect(bus.request(shape, { when, gone: undefined, list: [1, 'two', null] })).resolves.toEqual({ when: '2024-01-02T03:04:05.000Z', list: [1, 'two', null] });
      });

      it('spreads requests over the handlers of a subject, each request reaching exactly one', async () => {
        const first = await connect();
        const second = await connect();
        const client = await connect();
        const subject = unique('rpc.shared.');
        const byFirst: number[] = [];
        const bySecond: number[] = [];
        track(await first.handle<number, string>(subject, async (m) => (byFirst.push(m.data), 'first')));
        track(await second.handle<number, string>(subject, async (m) => (bySecond.push(m.data), 'second')));
        const answers: string[] = [];
        for (let i = 0; i < 40; i++) answers.push(await client.request<number, string>(subject, i));
        expect(byFirst.length).toBeGreaterThan(0);
        expect(bySecond.length).toBeGreaterThan(0);
        expect([...byFirst, ...bySecond].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
        expect(answers.filter((a) => a === 'first')).toHaveLength(byFirst.length);
      });

      it('raises BusRemoteError with the code, message and details of the handler error', async () => {
        const server = await connect();
        const client = await connect();
        const subject = unique('rpc.fail.');
        track(
          await server.handle<string, never>(subject, async (m) => {
            if (m.data === 'matrix') throw Object.assign(new Error('You are not invited'), { errcode: 'M_FORBIDDEN', details: { room: '!r:x' } });
            if (m.data === 'coded') throw Object.assign(new Error('gone'), { code: 'M_NOT_FOUND' });
            if (m.data === 'remote') throw new BusRemoteError('passed on', 'M_LIMIT_EXCEEDED', { retry_after_ms: 5 });
            throw new Error('kaboom');
          }),
        );
        const failure = (data: string): Promise<unknown> => client.request(subject, data).then(() => undefined, (error: unknown) => error);

        const matrix = await failure('matrix');
        expect(matrix).toBeInstanceOf(BusRemoteError);
        expect(matrix).toMatchObject({ code: 'M_FORBIDDEN', message: 'You are not invited', details: { room: '!r:x' } });
        expect(await failure('coded')).toMatchObject({ code: 'M_NOT_FOUND', message: 'gone' });
        expect(await failure('remote')).toMatchObject({ code: 'M_LIMIT_EXCEEDED', message: 'passed on', details: { retry_after_ms: 5 } });
        const plain = await failure('plain');
        expect(plain).toBeInstanceOf(BusRemoteError);
        expect(plain).toMatchObject({ code: 'M_UNKNOWN', message: 'kaboom' });
      });

      it('raises BusTimeoutError when no handler exists, at once', async () => {
        const client = await connect();
        const started = Date.now();
        await expect(client.request(unique('rpc.nobody.'), {}, { timeoutMs: 5_000 })).rejects.toBeInstanceOf(BusTimeoutError);
        expect(Date.now() - started).toBeLessThan(2_000);
      });

      it('raises BusTimeoutError when the handler does not answer in time, and stops routing to an unsubscribed handler', async () => {
        const server = await connect();
        const client = await connect();
        const subject = unique('rpc.slow.');
        const subscription = await server.handle(subject, () => sleep(1_000));
        const started = Date.now();
        await expect(client.request(subject, {}, { timeoutMs: 150 })).rejects.toBeInstanceOf(BusTimeoutError);
        expect(Date.now() - started).toBeLessThan(900);
        await subscription.unsubscribe();
        await expect(client.request(subject, {}, { timeoutMs: 2_000 })).rejects.toBeInstanceOf(BusTimeoutError);
      });
    });

    describe('publish/consume', () => {
      it('delivers a stream in order with increasing sequences and the headers given', async () => {
        const bus = await connect();
        const stream = unique('S');
        const subject = `${stream}.events`;
        await bus.ensureStream({ name: stream, subjects: [`${stream}.>`] });
        const sequences: number[] = [];
        for (let i = 0; i < 30; i++) sequences.push(await bus.publish(subject, { i }, { traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`, n: String(i) }));
        for (let i = 1; i < sequences.length; i++) expect(sequences[i]).toBeGreaterThan(sequences[i - 1]);

        const received: Array<StreamMessage<{ i: number }>> = [];
        track(await bus.consume<{ i: number }>(stream, { durable: unique('d') }, async (m) => void received.push(m)));
        await waitFor('30 messages', () => received.length >= 30);
        expect(received.map((m) => m.data.i)).toEqual(Array.from({ length: 30 }, (_, i) => i));
        expect(received.map((m) => m.sequence)).toEqual(sequences);
        expect(received.every((m) => m.deliveryCount === 1 && m.subject === subject)).toBe(true);
        expect(received[7].headers).toMatchObject({ traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`, n: '7' });
      });

      it('redelivers a message whose handler threw (at least once), with a higher delivery count', async () => {
        const bus = await connect();
        const stream = unique('S');
        await bus.ensureStream({ name: stream, subjects: [`${stream}.*`] });
        for (let i = 0; i < 5; i++) await bus.publish(`${stream}.x`, i);
        const deliveries: Array<{ value: number; count: number }> = [];
        const done = new Set<number>();
        let failedOnce = false;
        track(
          await bus.consume<number>(stream, { durable: unique('d'), ackWaitMs: 100 }, async (m) => {
            deliveries.push({ value: m.data, count: m.deliveryCount });
            if (m.data === 2 && !failedOnce) {
              failedOnce = true;
              throw new Error('transient');
            }
            done.add(m.data);
          }),
        );
        await waitFor('all five handled', () => done.size === 5);
        expect(deliveries.filter((d) => d.value === 2)).toEqual([
          { value: 2, count: 1 },
          { value: 2, count: 2 },
        ]);
        // Nothing else came twice.
        await sleep(300);
        expect(deliveries).toHaveLength(6);
      });

      it('stops redelivering after maxDeliver attempts and goes on with the rest', async () => {
        const bus = await connect();
        const stream = unique('S');
        await bus.ensureStream({ name: stream, subjects: [`${stream}.*`] });
        await bus.publish(`${stream}.x`, 'poison');
        await bus.publish(`${stream}.x`, 'fine');
        const attempts: string[] = [];
        track(
          await bus.consume<string>(stream, { durable: unique('d'), ackWaitMs: 50, maxDeliver: 3 }, async (m) => {
            attempts.push(m.data);
            if (m.data === 'poison') throw new Error('always');
          }),
        );
        await waitFor('three attempts and the good one', () => attempts.filter((a) => a === 'poison').length >= 3 && attempts.includes('fine'));
        await sleep(400);
        expect(attempts.filter((a) => a === 'poison')).toHaveLength(3);
        expect(attempts.filter((a) => a === 'fine')).toHaveLength(1);
      });

      it('shares the work of one durable between two consumers, without duplicates', async () => {
        const one = await connect();
        const two = await connect();
        const stream = unique('S');
        await Promise.all([one.ensureStream({ name: stream, subjects: [`${stream}.*`] }), two.ensureStream({ name: stream, subjects: [`${stream}.*`] })]);
        const durable = unique('workers');
        const byOne: number[] = [];
        const byTwo: number[] = [];
        track(await one.consume<number>(stream, { durable }, async (m) => (byOne.push(m.data), sleep(5))));
        track(await two.consume<number>(stream, { durable }, async (m) => (byTwo.push(m.data), sleep(5))));
        for (let i = 0; i < 40; i++) await one.publish(`${stream}.job`, i);
        await waitFor('40 jobs', () => byOne.length + byTwo.length >= 40);
        await sleep(200);
        expect(byOne.length).toBeGreaterThan(0);
        expect(byTwo.length).toBeGreaterThan(0);
        expect([...byOne, ...byTwo].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
        // Each consumer sees its share in stream order.
        expect([...byOne].sort((a, b) => a - b)).toEqual(byOne);
        expect([...byTwo].sort((a, b) => a - b)).toEqual(byTwo);
      });

      it('resumes a restarted durable where it left off, losing and repeating nothing acknowledged', async () => {
        const bus = await connect();
        const stream = unique('S');
        await bus.ensureStream({ name: stream, subjects: [`${stream}.*`] });
        const durable = unique('resume');
        for (let i = 0; i < 5; i++) await bus.publish(`${stream}.m`, i);
        const first: number[] = [];
        const before = await bus.consume<number>(stream, { durable }, async (m) => void first.push(m.data));
        await waitFor('first five', () => first.length >= 5);
        await before.unsubscribe();
        for (let i = 5; i < 10; i++) await bus.publish(`${stream}.m`, i);
        await sleep(100);
        expect(first).toEqual([0, 1, 2, 3, 4]);

        // Another process picks the same durable up. deliverNew does not move an existing durable's position.
        const other = await connect();
        const second: number[] = [];
        track(await other.consume<number>(stream, { durable, deliverNew: true }, async (m) => void second.push(m.data)));
        await waitFor('the next five', () => second.length >= 5);
        await sleep(200);
        expect(second).toEqual([5, 6, 7, 8, 9]);
      });

      it('starts a deliverNew durable with messages published after it was created', async () => {
        const bus = await connect();
        const stream = unique('S');
        await bus.ensureStream({ name: stream, subjects: [`${stream}.*`] });
        for (let i = 0; i < 3; i++) await bus.publish(`${stream}.old`, `old${i}`);
        const got: string[] = [];
        track(await bus.consume<string>(stream, { durable: unique('new'), deliverNew: true }, async (m) => void got.push(m.data)));
        await bus.publish(`${stream}.new`, 'new0');
        await bus.publish(`${stream}.new`, 'new1');
        await waitFor('two new', () => got.length >= 2);
        await sleep(100);
        expect(got).toEqual(['new0', 'new1']);

        // A durable without deliverNew, created now, starts from the beginning.
        const all: string[] = [];
        track(await bus.consume<string>(stream, { durable: unique('all') }, async (m) => void all.push(m.data)));
        await waitFor('five', () => all.length >= 5);
        expect(all).toEqual(['old0', 'old1', 'old2', 'new0', 'new1']);
      });

      it('takes only the subjects matching filterSubject', async () => {
        const bus = await connect();
        const stream = unique('S');
        await bus.ensureStream({ name: stream, subjects: [`${stream}.>`] });
        await bus.publish(`${stream}.a.1`, 'a1');
        await bus.publish(`${stream}.b.1`, 'b1');
        await bus.publish(`${stream}.a.2`, 'a2');
        const got: string[] = [];
        track(await bus.consume<string>(stream, { durable: unique('only-a'), filterSubject: `${stream}.a.*` }, async (m) => void got.push(m.data)));
        await waitFor('two a', () => got.length >= 2);
        await bus.publish(`${stream}.b.2`, 'b2');
        await bus.publish(`${stream}.a.3`, 'a3');
        await waitFor('three a', () => got.length >= 3);
        await sleep(100);
        expect(got).toEqual(['a1', 'a2', 'a3']);
      });

      it('keeps ensureStream idempotent across processes and lets it add subjects', async () => {
        const one = await connect();
        const two = await connect();
        const stream = unique('S');
        await Promise.all([
          one.ensureStream({ name: stream, subjects: [`${stream}.a`] }),
          two.ensureStream({ name: stream, subjects: [`${stream}.a`] }),
          one.ensureStream({ name: stream, subjects: [`${stream}.a`] }),
        ]);
        const first = await one.publish(`${stream}.a`, 1);
        await expect(two.publish(`${stream}.b`, 2)).rejects.toThrow();
        await two.ensureStream({ name: stream, subjects: [`${stream}.a`, `${stream}.b`] });
        // The messages already stored survive the update.
        expect(await two.publish(`${stream}.b`, 2)).toBe(first + 1);
      });

      it('refuses a stream whose subjects overlap those of another stream', async () => {
        const bus = await connect();
        const base = unique('ov');
        await bus.ensureStream({ name: `${base}A`, subjects: [`${base}.a.*`] });
        await expect(bus.ensureStream({ name: `${base}B`, subjects: [`${base}.>`] })).rejects.toThrow(/overlap/);
        await bus.ensureStream({ name: `${base}C`, subjects: [`${base}.b.*`] });
        expect(await bus.publish(`${base}.b.x`, 1)).toBe(1);
      });

      it('refuses to publish on a subject no stream captures', async () => {
        const bus = await connect();
        await expect(bus.publish(unique('nostream.'), 1)).rejects.toThrow();
      });
    });

    describe('notify/subscribe', () => {
      it('fans out to every matching subscriber with NATS wildcards, headers included', async () => {
        const sender = await connect();
        const receiver = await connect();
        const root = unique('n');
        const got: Record<string, string[]> = { star: [], tail: [], exact: [], other: [] };
        const headersSeen: Array<Record<string, string>> = [];
        track(await receiver.subscribe<string>(`${root}.*.wake`, (m) => void got.star.push(`${m.subject}=${m.data}`)));
        track(await receiver.subscribe<string>(`${root}.>`, (m) => void got.tail.push(m.subject)));
        track(
          await sender.subscribe<string>(`${root}.u1.wake`, (m) => {
            got.exact.push(m.data);
            headersSeen.push(m.headers);
          }),
        );
        track(await receiver.subscribe<string>(`${root}.*`, (m) => void got.other.push(m.subject)));

        await sender.notify(`${root}.u1.wake`, 'one', { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` });
        await sender.notify(`${root}.u2.wake`, 'two');
        await sender.notify(`${root}.u1.sleep`, 'three');
        await sender.notify(`${root}.u1.wake.extra`, 'four');
        await sender.notify(`${root}`, 'five');
        await waitFor('the tail subscriber', () => got.tail.length >= 4);
        await sleep(100);
        expect(got.star.sort()).toEqual([`${root}.u1.wake=one`, `${root}.u2.wake=two`]);
        expect(got.tail.sort()).toEqual([`${root}.u1.sleep`, `${root}.u1.wake`, `${root}.u1.wake.extra`, `${root}.u2.wake`].sort());
        expect(got.exact).toEqual(['one']);
        expect(headersSeen[0]).toMatchObject({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` });
        // `*` is one token: `root.*` matches none of the three-token subjects, and `root` itself has no second token.
        expect(got.other).toEqual([]);
      });

      it('stops delivering after unsubscribe and survives a throwing subscriber', async () => {
        const bus = await connect();
        const subject = unique('n.');
        const got: number[] = [];
        track(
          await bus.subscribe<number>(subject, () => {
            throw new Error('subscriber bug');
          }),
        );
        const subscription = await bus.subscribe<number>(subject, (m) => void got.push(m.data));
        await bus.notify(subject, 1);
        await waitFor('first', () => got.length === 1);
        await subscription.unsubscribe();
        await bus.notify(subject, 2);
        await sleep(150);
        expect(got).toEqual([1]);
      });
    });

    describe('lifecycle', () => {
      it('answers ping while open and not after close', async () => {
        const bus = await world.connect();
        expect(await bus.ping()).toBe(true);
        await bus.close();
        expect(await bus.ping()).toBe(false);
      });

      it('lets an in-flight stream handler finish and acknowledge when closing', async () => {
        const bus = await world.connect();
        const stream = unique('S');
        await bus.ensureStream({ name: stream, subjects: [`${stream}.*`] });
        const durable = unique('closing');
        await bus.publish(`${stream}.m`, 1);
        let finished = 0;
        let started = false;
        await bus.consume<number>(stream, { durable }, async () => {
          started = true;
          await sleep(200);
          finished++;
        });
        await waitFor('handler start', () => started);
        await bus.close();
        expect(finished).toBe(1);

        // The message was acknowledged: a later consumer of the durable does not get it again.
        const later = await connect();
        await later.publish(`${stream}.m`, 2);
        const got: number[] = [];
        track(await later.consume<number>(stream, { durable }, async (m) => void got.push(m.data)));
        await waitFor('the second message', () => got.length >= 1);
        await sleep(150);
        expect(got).toEqual([2]);
      });
    });
  });
}
