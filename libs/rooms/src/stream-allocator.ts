import { randomBytes } from 'node:crypto';
import type { Collection, Doc, DocumentStore } from '@atrium/storage';

/**
 * Stream positions and the *safe position* readers must not read past
 * (docs/client-server-design.md "Streams"; ARCHITECTURE.md rule 2: a sync
 * token never lets a client skip something committed late).
 *
 * Positions come from `store.nextSequence('stream.<name>')` before the row is
 * written, so a reader can see position 6 written while 5 is still in flight.
 * The design doc asks for `stream_allocations` rows so a reader can tell an
 * in-flight gap from an abandoned one. This is that, arranged so the reader
 * needs two queries and no per-position probing:
 *
 * Writer (`allocate` … `release`):
 *   1. floor = currentSequence(counter)          (a lower bound of what it will get)
 *   2. insert a claim { name, floor, ts }         (BEFORE taking the position)
 *   3. position = nextSequence(counter)           (position > floor)
 *   4. the caller writes its rows with `stream: position`
 *   5. delete the claim                           (AFTER the rows are written)
 *
 * Reader (`safePosition`):
 *   1. max = currentSequence(counter)
 *   2. claims = live claims of this stream (younger than the grace period)
 *   3. safe = min(max, min over claims of claim.floor)
 *
 * Why it is safe: take a position q ≤ max whose rows are not written yet.
 * Its writer called nextSequence (step 3) before the reader's step 1, so it
 * inserted its claim before that and will delete it only after writing; the
 * reader's step 2 therefore sees the claim, and claim.floor < q, so safe < q.
 * A claim whose writer died is ignored after `STREAM_GAP_GRACE_MS` (the design
 * doc's rule for abandoned allocations); a writer slower than that may be
 * skipped, which is the trade the design doc accepts.
 *
 * The bound is conservative while writes are in flight (safe may stay a few
 * positions behind for the duration of one write) and exact when idle.
 */
export const STREAM_GAP_GRACE_MS = 10_000;

export interface StreamAllocationRecord extends Doc {
  _id: string; // random claim ID
  name: string;
  floor: number;
  ts: number;
}

export interface StreamAllocation {
  readonly name: string;
  readonly position: number;
  /** Call after the rows carrying `position` are written (also after a failed write: the gap is then abandoned at once). */
  release(): Promise<void>;
}

export class StreamAllocator {
  private constructor(
    private readonly store: DocumentStore,
    private readonly claims: Collection<StreamAllocationRecord>,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<StreamAllocator> {
    return new StreamAllocator(store, await store.collection<StreamAllocationRecord>({ name: 'stream_allocations', indexes: [{ fields: ['name'] }] }), now);
  }

  /** The counter a stream's positions come from: `stream.<name>`. */
  static counter(name: string): string {
    return `stream.${name}`;
  }

  async allocate(name: string): Promise<StreamAllocation> {
    const counter = StreamAllocator.counter(name);
    const floor = await this.store.currentSequence(counter);
    const id = randomBytes(12).toString('hex');
    await this.claims.insert({ _id: id, name, floor, ts: this.now() });
    let position: number;
    try {
      position = await this.store.nextSequence(counter);
    } catch (err) {
      await this.claims.delete(id);
      throw err;
    }
    return {
      name,
      position,
      release: async () => {
        await this.claims.delete(id);
      },
    };
  }

  /** Runs `write(position)` between allocate and release. */
  async withPosition<T>(name: string, write: (position: number) => Promise<T>): Promise<T> {
    const allocation = await this.allocate(name);
    try {
      return await write(allocation.position);
    } finally {
      await allocation.release();
    }
  }

  /** The highest position of the stream a reader may read up to (see the class comment). */
  async safePosition(name: string): Promise<number> {
    const max = await this.store.currentSequence(StreamAllocator.counter(name));
    const live = await this.claims.find({ name, ts: { $gt: this.now() - STREAM_GAP_GRACE_MS } });
    let safe = max;
    for (const claim of live) if (claim.floor < safe) safe = claim.floor;
    return safe;
  }

  /** Deletes claims abandoned longer than the grace period ago (housekeeping; readers ignore them anyway). */
  async pruneAbandoned(): Promise<number> {
    const stale = await this.claims.find({ ts: { $lte: this.now() - STREAM_GAP_GRACE_MS } });
    for (const claim of stale) await this.claims.delete(claim._id);
    return stale.length;
  }
}
