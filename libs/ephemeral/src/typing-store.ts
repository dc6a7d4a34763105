import type { Collection, Doc, DocumentStore } from '@atrium/storage';
import { EPHEMERAL_STREAMS, MAX_CAS_ATTEMPTS, type StreamPositionSource, type WakeSync } from './streams';

/**
 * Typing notifications (client-server-api "Typing Notifications"), kept in
 * storage so every client-api replica sees the same state.
 *
 * One document per (room, user). `stream` is the position, on the `typing`
 * stream, of the last change of that user's typing *status* in the room, so
 * /sync finds the rooms whose typing list changed in (from, to] with one range
 * query, then sends each such room's whole current list: "When a client
 * receives an m.typing event, it MUST use the user ID list to REPLACE its
 * knowledge of every user who is currently typing".
 *
 * A client renewing its typing state before the timeout runs out (the spec
 * recommends re-sending every 20–30 s while typing) only moves `expires_ts`:
 * the list does not change, so no position is taken and no sync wakes.
 * When the timeout passes, `expire()` (run periodically by each replica)
 * writes the stop with a new position; a compare-and-set on the old position
 * lets exactly one replica win. Readers also leave out users whose timeout
 * has passed but whose stop is not written yet.
 *
 * The documents stay once written (typing: false), as the server must be
 * able to say "this room's list changed"; there is one per user and room
 * they ever typed in.
 */
export interface TypingRecord extends Doc {
  _id: string; // room_id \n user_id
  room_id: string;
  user_id: string;
  typing: boolean;
  /** When a `typing: true` state runs out (ms since the epoch); 0 when not typing. */
  expires_ts: number;
  /** Position on the `typing` stream of the last status change. */
  stream: number;
}

/** The longest timeout honoured: a client cannot pin itself as typing for hours (Synapse caps at the same 120 s). */
export const MAX_TYPING_TIMEOUT_MS = 120_000;

function recordId(roomId: string, userId: string): string {
  return `${roomId}\n${userId}`;
}

export class TypingStore {
  private constructor(
    private readonly records: Collection<TypingRecord>,
    private readonly positions: StreamPositionSource,
    private readonly wake: WakeSync,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, positions: StreamPositionSource, wake: WakeSync, now: () => number = Date.now): Promise<TypingStore> {
    const records = await store.collection<TypingRecord>({
      name: 'typing',
      indexes: [{ fields: ['room_id', 'stream'] }, { fields: ['typing', 'expires_ts'] }],
    });
    return new TypingStore(records, positions, wake, now);
  }

  /**
   * PUT /rooms/{roomId}/typing/{userId}: the user types for the next
   * `timeoutMs` ms (capped at MAX_TYPING_TIMEOUT_MS), or stopped. Returns the
   * position written, or null when the room's typing list did not change.
   */
  async setTyping(roomId: string, userId: string, typing: boolean, timeoutMs = 0): Promise<number | null> {
    const id = recordId(roomId, userId);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const now = this.now();
      const current = await this.records.get(id);
      const wasTyping = current !== null && current.typing && current.expires_ts > now;
      const expires = typing ? now + Math.min(Math.max(0, timeoutMs), MAX_TYPING_TIMEOUT_MS) : 0;
      if (typing && wasTyping) {
        // A renewal: the list is unchanged, only the deadline moves (compare-and-set so a concurrent stop wins).
        if (await this.records.update(id, { expires_ts: expires }, { stream: current.stream, typing: true })) return null;
        continue;
      }
      // Stopping when not typing changes nothing, unless a timed-out start still awaits its written stop.
      if (!typing && (current === null || !current.typing)) return null;
      const written = await this.write(id, roomId, userId, typing, expires, current);
      if (written !== null) return written;
    }
    throw new Error(`typing of ${userId} in ${roomId}: too many concurrent writes`);
  }

  /** Writes a status change with a new position if the row is still at `current`'s position; null if another write won. */
  private async write(id: string, roomId: string, userId: string, typing: boolean, expires: number, current: TypingRecord | null): Promise<number | null> {
    const position = await this.positions.withPosition(EPHEMERAL_STREAMS.typing, async (position) => {
      const ok = current
        ? await this.records.update(id, { typing, expires_ts: expires, stream: position }, { stream: current.stream })
        : await this.records.insert({ _id: id, room_id: roomId, user_id: userId, typing, expires_ts: expires, stream: position });
      return ok ? position : null;
    });
    if (position !== null) await this.wake({ stream: EPHEMERAL_STREAMS.typing, position, room_id: roomId });
    return position;
  }

  /**
   * Writes the stop of every typing state whose timeout has passed ("the
   * user is typing for the next N milliseconds"). Safe to run on every
   * replica at once: each stop is a compare-and-set. Returns how many it
   * wrote; `onStopped` is called for each stop this call wrote (so a stop
   * is federated once, by the replica that wrote it).
   */
  async expire(onStopped?: (record: TypingRecord) => Promise<void>): Promise<number> {
    const due = await this.records.find({ typing: true, expires_ts: { $lte: this.now() } });
    let written = 0;
    for (const record of due) {
      if ((await this.write(record._id, record.room_id, record.user_id, false, 0, record)) !== null) {
        written++;
        await onStopped?.(record);
      }
    }
    return written;
  }

  /** Every typing state not past its timeout, in all rooms (for the sweep that ends those of members who left). */
  active(): Promise<TypingRecord[]> {
    return this.records.find({ typing: true, expires_ts: { $gt: this.now() } });
  }

  /** Users typing now in each of the rooms (rooms with nobody typing are absent). */
  async typingIn(roomIds: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (roomIds.length === 0) return out;
    const now = this.now();
    const records = await this.records.find({ room_id: { $in: [...roomIds] }, typing: true, expires_ts: { $gt: now } }, { sort: { stream: 1 } });
    for (const record of records) {
      const users = out.get(record.room_id) ?? [];
      users.push(record.user_id);
      out.set(record.room_id, users);
    }
    return out;
  }

  /** The rooms, among `roomIds`, whose typing list changed in (from, to]. */
  async changedRooms(roomIds: readonly string[], from: number, to: number): Promise<Set<string>> {
    if (roomIds.length === 0 || to <= from) return new Set();
    const records = await this.records.find({ room_id: { $in: [...roomIds] }, stream: { $gt: from, $lte: to } });
    return new Set(records.map((r) => r.room_id));
  }

  safePosition(): Promise<number> {
    return this.positions.safePosition(EPHEMERAL_STREAMS.typing);
  }
}
