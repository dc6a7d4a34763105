import { connect as connectNats } from 'nats';
import { startNats, type NatsServer } from '../../../tools/test-servers/nats';
import { busContract } from './contract';
import { NatsBus } from './nats-bus';
import { openBus } from './open-bus';

// A real nats-server -js per suite; a missing binary fails the suite with the install command.
busContract('NatsBus', {
  async start() {
    const server = await startNats();
    return { connect: () => NatsBus.connect(server.url), stop: () => server.stop() };
  },
});

describe('NatsBus', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNats();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('fails, naming the install command, when nats-server is missing', async () => {
    const saved = process.env.ATRIUM_NATS_BIN;
    process.env.ATRIUM_NATS_BIN = '/nonexistent/nats-server';
    try {
      await expect(startNats()).rejects.toThrow('apt-get install nats-server redis-server');
    } finally {
      if (saved === undefined) delete process.env.ATRIUM_NATS_BIN;
      else process.env.ATRIUM_NATS_BIN = saved;
    }
  });

  it('is what openBus gives for a nats:// URL with a server list', async () => {
    const port = new URL(server.url).port;
    const bus = await openBus(`nats://127.0.0.1:${port},127.0.0.1:${port}`);
    expect(bus).toBeInstanceOf(NatsBus);
    expect(await bus.ping()).toBe(true);
    await bus.close();
    expect(await bus.ping()).toBe(false);
  });

  it('keeps stream messages in file storage on the server', async () => {
    const bus = await NatsBus.connect(server.url);
    await bus.ensureStream({ name: 'FILES', subjects: ['files.>'] });
    expect(await bus.publish('files.a', { a: 1 })).toBe(1);
    await bus.close();
    const nc = await connectNats({ servers: server.url });
    const info = await (await nc.jetstreamManager()).streams.info('FILES');
    expect(info.config.storage).toBe('file');
    expect(info.state.messages).toBe(1);
    await nc.close();
  });

  it('redelivers the message of a worker whose process died, after the ack wait', async () => {
    const bus = await NatsBus.connect(server.url, { streamAckWaitMs: 1_000 });
    await bus.ensureStream({ name: 'CRASH', subjects: ['crash.>'] });
    const seen: Array<{ data: string; deliveryCount: number }> = [];
    // Creates the durable, then leaves it.
    await (await bus.consume<string>('CRASH', { durable: 'workers' }, async (m) => void seen.push(m))).unsubscribe();
    await bus.publish('crash.job', 'job-1');

    // Another process of the same durable pulls the job and dies before acknowledging it.
    const doomed = await connectNats({ servers: server.url });
    const taken = await (await doomed.jetstream().consumers.get('CRASH', 'workers')).next({ expires: 5_000 });
    expect(taken?.seq).toBe(1);
    await doomed.close();

    const started = Date.now();
    const subscription = await bus.consume<string>('CRASH', { durable: 'workers' }, async (m) => void seen.push({ data: m.data, deliveryCount: m.deliveryCount }));
    for (let i = 0; i < 500 && seen.length === 0; i++) await new Promise((done) => setTimeout(done, 10));
    expect(seen).toEqual([{ data: 'job-1', deliveryCount: 2 }]);
    expect(Date.now() - started).toBeLessThan(3_000);
    await subscription.unsubscribe();
    await bus.close();
  });

  it('keeps a slow handler\'s message from being redelivered while it works', async () => {
    const bus = await NatsBus.connect(server.url, { streamAckWaitMs: 300 });
    const other = await NatsBus.connect(server.url, { streamAckWaitMs: 300 });
    await bus.ensureStream({ name: 'SLOW', subjects: ['slow.>'] });
    await bus.publish('slow.job', 'long');
    const deliveries: string[] = [];
    const a = await bus.consume<string>('SLOW', { durable: 'slow' }, async (m) => {
      deliveries.push(`a:${m.data}:${m.deliveryCount}`);
      await new Promise((done) => setTimeout(done, 1_200));
    });
    const b = await other.consume<string>('SLOW', { durable: 'slow' }, async (m) => void deliveries.push(`b:${m.data}:${m.deliveryCount}`));
    await new Promise((done) => setTimeout(done, 1_500));
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatch(/^[ab]:long:1$/);
    await Promise.all([a.unsubscribe(), b.unsubscribe()]);
    await Promise.all([bus.close(), other.close()]);
  });
});
