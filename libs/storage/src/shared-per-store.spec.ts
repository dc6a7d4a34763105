import { SharedPerStore } from './shared-per-store';
import type { DocumentStore } from './port';

describe('SharedPerStore', () => {
  const storeA = {} as DocumentStore;
  const storeB = {} as DocumentStore;

  it('opens once per store and gives every caller the same value', async () => {
    const shared = new SharedPerStore<{ n: number }>();
    let opens = 0;
    const open = () => Promise.resolve({ n: ++opens });
    const [one, two] = await Promise.all([shared.get(storeA, open), shared.get(storeA, open)]);
    expect(one).toBe(two);
    expect((await shared.get(storeB, open)).n).toBe(2);
    expect(opens).toBe(2);
  });

  it('forgets a failed open, so the next caller tries again', async () => {
    const shared = new SharedPerStore<string>();
    await expect(shared.get(storeA, () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    await expect(shared.get(storeA, () => Promise.resolve('up'))).resolves.toBe('up');
  });
});
