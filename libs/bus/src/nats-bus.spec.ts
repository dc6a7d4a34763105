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
    const { connect } = await import('nats');
    const nc = await connect({ servers: server.url });
    const info = await (await nc.jetstreamManager()).streams.info('FILES');
    expect(info.config.storage).toBe('file');
    expect(info.state.messages).toBe(1);
    await nc.close();
  });
});
