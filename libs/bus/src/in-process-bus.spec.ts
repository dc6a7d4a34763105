import { busContract } from './contract';
import { InProcessBus } from './in-process-bus';
import { openBus } from './open-bus';
import { subjectMatches, subjectsOverlap } from './subjects';

// Each connect() is a client of one shared InProcessBus, as each service of the embedded mode is.
busContract('InProcessBus', {
  async start() {
    const bus = new InProcessBus();
    return { connect: async () => bus.client(), stop: () => bus.close() };
  },
});

describe('InProcessBus', () => {
  it('is what openBus gives for inprocess:', async () => {
    const bus = await openBus('inprocess:');
    expect(bus).toBeInstanceOf(InProcessBus);
    await bus.close();
    await expect(openBus('carrier-pigeon://x')).rejects.toThrow(/unsupported bus URL/);
  });

  it('drops the oldest stream messages beyond maxStreamMessages', async () => {
    const bus = new InProcessBus({ maxStreamMessages: 3 });
    await bus.ensureStream({ name: 'S', subjects: ['s.>'] });
    for (let i = 0; i < 5; i++) await bus.publish('s.x', i);
    const got: Array<[number, number]> = [];
    const subscription = await bus.consume<number>('S', { durable: 'd' }, async (m) => void got.push([m.sequence, m.data]));
    for (let i = 0; i < 100 && got.length < 3; i++) await new Promise((done) => setTimeout(done, 10));
    await subscription.unsubscribe();
    expect(got).toEqual([
      [3, 2],
      [4, 3],
      [5, 4],
    ]);
    await bus.close();
  });

  it('refuses work after close', async () => {
    const bus = new InProcessBus();
    await bus.close();
    expect(await bus.ping()).toBe(false);
    await expect(bus.notify('a', 1)).rejects.toThrow(/closed/);
  });
});

describe('subjectMatches', () => {
  it.each([
    ['a.b', 'a.b', true],
    ['a.*', 'a.b', true],
    ['a.*', 'a.b.c', false],
    ['a.>', 'a.b.c', true],
    ['a.>', 'a', false],
    ['*.b.>', 'x.b.y', true],
    ['*.b.>', 'x.c.y', false],
    ['a.b', 'a.b.c', false],
    ['a.b.c', 'a.b', false],
  ])('%s matches %s: %s', (pattern, subject, expected) => {
    expect(subjectMatches(pattern, subject)).toBe(expected);
  });
});

describe('subjectsOverlap', () => {
  it.each([
    ['a.b', 'a.b', true],
    ['a.*', 'a.b', true],
    ['a.>', 'a.b.c', true],
    ['a.*', 'a.b.c', false],
    ['a.b', 'a.c', false],
    ['*.b', 'a.*', true],
    ['a.>', 'a', false],
    ['>', 'x', true],
  ])('%s and %s: %s', (a, b, expected) => {
    expect(subjectsOverlap(a, b)).toBe(expected);
    expect(subjectsOverlap(b, a)).toBe(expected);
  });
});
