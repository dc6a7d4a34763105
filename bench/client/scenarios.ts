/**
 * Client-side loops shared by bench:client (bench/client.bench.ts) and the
 * storage profile (bench/storage-profile.ts), so both measure the same thing.
 */
import { createRoom, join, sendMessage, sync, type Session } from './http';

/** The filter of bench:client's initial /sync: lazy-loaded members (sent with full_state). */
export const INITIAL_SYNC_FILTER = JSON.stringify({ room: { state: { lazy_load_members: true } } });

/** Runs `count` tasks with at most `width` in flight. */
export async function pool(count: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, count) }, async () => {
      while (next < count) {
        const i = next++;
        await task(i);
      }
    }),
  );
}

/**
 * `count` /sync wake-ups: a long-poll of `reader` is waiting, `writer` sends
 * into `roomId`, and the time from the start of the send to the sync
 * returning the event. Answers the latencies in ms, sorted.
 */
export async function measureWakeups(base: string, reader: Session, writer: Session, roomId: string, count: number): Promise<number[]> {
  let since = (await sync(base, reader, { timeout: '0' })).body.next_batch;
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const waiting = sync(base, reader, { since, timeout: '10000' });
    // Let the long-poll park on the server before the send starts the clock.
    await new Promise((resolve) => setTimeout(resolve, 30));
    const t0 = performance.now();
    const eventId = await sendMessage(base, writer, roomId, `wake ${i}`);
    let result = await waiting;
    // A sync can return early with something else (e.g. the send's own echo ordering); follow it until the event shows.
    for (let hops = 0; hops < 5 && !result.body.rooms?.join?.[roomId]?.timeline?.events?.some((e) => e.event_id === eventId); hops++) {
      result = await sync(base, reader, { since: result.body.next_batch, timeout: '10000' });
    }
    latencies.push(performance.now() - t0);
    since = result.body.next_batch;
  }
  return latencies.sort((a, b) => a - b);
}

/**
 * The initial-sync scenario's history: `other` creates `rooms` rooms that
 * `user` joins (10 at a time), then the two send `perRoom` messages into each,
 * taking turns, `sendWidth` in flight. Answers the room IDs and both phases' seconds.
 */
export async function seedRooms(
  base: string,
  user: Session,
  other: Session,
  rooms: number,
  perRoom: number,
  sendWidth: number,
): Promise<{ roomIds: string[]; createSeconds: number; sendSeconds: number }> {
  const roomIds = new Array<string>(rooms);
  const t0 = performance.now();
  await pool(rooms, 10, async (i) => {
    roomIds[i] = await createRoom(base, other, { name: `room ${i}` });
    await join(base, user, roomIds[i]);
  });
  const t1 = performance.now();
  await pool(rooms * perRoom, sendWidth, async (i) => {
    await sendMessage(base, i % 2 === 0 ? user : other, roomIds[i % rooms], `history ${i}`);
  });
  return { roomIds, createSeconds: (t1 - t0) / 1000, sendSeconds: (performance.now() - t1) / 1000 };
}
