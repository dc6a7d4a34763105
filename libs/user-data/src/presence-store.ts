import type { Collection, Doc, DocumentStore } from '@atrium/storage';
import { USER_DATA_STREAMS, type StreamPositionSource, type WakeSync } from './streams';

/**
 * Presence (client-server-api "Presence" module): one document per user with
 * the state the user set, the status message and the last time the user was
 * active, and the position of its last change on the `presence` stream.
 */
export type PresenceState = 'online' | 'unavailable' | 'offline';
export const PRESENCE_STATES: readonly PresenceState[] = ['online', 'unavailable', 'offline'];

export interface PresenceRecord extends Doc {
  _id: string; // user ID
  presence: string;
  status_msg: string | null;
  last_active_ts: number;
  stream: number;
  /**
   * What the last write told clients (phaseOf at its time): `active`
   * (online, currently_active), `inactive` (online, not currently active),
   * `idle` (read as unavailable), `none` (not online). announceInactivity
   * finds online users whose phase has moved on since. Absent on records
   * written before it existed.
   */
  phase?: string;
  /** Set on presence received from another server (putRemote): never federated on. */
  remote?: boolean;
}

/** The content of an `m.presence` event (event schema m.presence) and of GET /presence/{userId}/status. */
export interface PresenceContent {
  presence: PresenceState;
  last_active_ago?: number;
  status_msg?: string | null;
  currently_active?: boolean;
  displayname?: string;
  avatar_url?: string;
}

/**
 * "Idle timeout": "The server will automatically set a user's presence to
 * `unavailable` if their last active time was over a threshold value (e.g. 5
 * minutes)". Applied when presence is read, so no timer has to run.
 */
export const IDLE_TIMEOUT_MS = 5 * 60 * 1000;
/** "Last active ago": an online user active this recently is `currently_active`. */
export const CURRENTLY_ACTIVE_MS = 60 * 1000;
/**
 * An online user inactive this long gets an update saying `currently_active:
 * false` ("the server will not send further updates to the last active time
 * until an update is sent to the client with either a) currently_active set
 * to false or b) a presence state other than online"). Later than
 * CURRENTLY_ACTIVE_MS: a polling client bumps its activity about once a
 * minute (syncActivity), and announcing in between would double the presence
 * traffic of every connected user; GET /presence is exact meanwhile.
 */
export const INACTIVE_ANNOUNCE_MS = 2 * CURRENTLY_ACTIVE_MS;

type PresencePhase = 'active' | 'inactive' | 'idle' | 'none';

/** The phase a record's view is in at `now` (see PresenceRecord.phase). */
export function presencePhase(presence: string, lastActiveTs: number, now: number): PresencePhase {
  if (presence !== 'online') return 'none';
  const ago = now - lastActiveTs;
  if (lastActiveTs > 0 && ago > IDLE_TIMEOUT_MS) return 'idle';
  if (lastActiveTs > 0 && ago > CURRENTLY_ACTIVE_MS) return 'inactive';
  return 'active';
}

export class PresenceStore {
  private constructor(
    private readonly records: Collection<PresenceRecord>,
    private readonly positions: StreamPositionSource,
    private readonly wake: WakeSync,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, positions: StreamPositionSource, wake: WakeSync, now: () => number = Date.now): Promise<PresenceStore> {
    const records = await store.collection<PresenceRecord>({
      name: 'presence',
      // The second index serves announceInactivity (online users by phase and last activity).
      indexes: [{ fields: ['stream'] }, { fields: ['presence', 'phase', 'last_active_ts'] }],
    });
    return new PresenceStore(records, positions, wake, now);
  }

  /** Called after each write with the user whose presence changed (federation-outbound's m.presence EDU). */
  private listener?: (userId: string) => Promise<void>;

  /** Registers the one write listener (client-api hands local users' changes to federation: server-server-api "Presence"). */
  onWrite(listener: (userId: string) => Promise<void>): void {
    this.listener = listener;
  }

  /**
   * Stores presence a remote server sent (server-server-api "Presence",
   * m.presence EDU): its state, message and last activity as given, woken
   * for `audience`. No write listener call: remote presence is not federated on.
   */
  putRemote(userId: string, fields: { presence: PresenceState; status_msg: string | null; last_active_ts: number }, audience: string[]): Promise<number> {
    return this.write(userId, fields, audience, false);
  }

  /**
   * Sets the user's presence. "When setting the status, the activity time is
   * updated to reflect that activity". `audience` are the users whose /sync
   * should wake (the user and those sharing a room, per "Presence").
   * `statusMsg` undefined keeps the current message.
   */
  async set(userId: string, presence: PresenceState, statusMsg: string | null | undefined, audience: string[]): Promise<number> {
    const current = await this.records.get(userId);
    const status = statusMsg === undefined ? (current?.status_msg ?? null) : statusMsg;
    return this.write(userId, { presence, status_msg: status, last_active_ts: this.now() }, audience);
  }

  /**
   * Puts a new position on the user's presence without changing it: "Events on
   * Change of Profile Information" asks for an `m.presence` update carrying
   * the new display name and avatar.
   */
  async touch(userId: string, audience: string[]): Promise<number> {
    const current = await this.records.get(userId);
    return this.write(userId, { presence: current?.presence ?? 'offline', status_msg: current?.status_msg ?? null, last_active_ts: current?.last_active_ts ?? 0 }, audience);
  }

  /**
   * /sync's `set_presence` ("Controls whether the client is automatically
   * marked as online by polling this API"): `online` marks the user online and
   * active now, `unavailable` marks them unavailable. To keep a polling client
   * from writing (and waking everyone sharing a room) on every request, a
   * write happens only when the state changes, or for `online` when the last
   * activity is older than CURRENTLY_ACTIVE_MS. Returns the new position, or
   * null when nothing was written.
   */
  async syncActivity(userId: string, state: 'online' | 'unavailable', audience: () => Promise<string[]>): Promise<number | null> {
    const current = await this.records.get(userId);
    const now = this.now();
    const fresh = current !== null && now - current.last_active_ts <= CURRENTLY_ACTIVE_MS;
    if (current && current.presence === state && (state !== 'online' || fresh)) return null;
    const lastActive = state === 'online' ? now : (current?.last_active_ts ?? now);
    return this.write(userId, { presence: state, status_msg: current?.status_msg ?? null, last_active_ts: lastActive }, await audience());
  }

  /**
   * A pro-active event other than syncing ("Last active ago": "A pro-active
   * event may be sending a message to a room"): the last active time becomes
   * now, and "any activity that bumps the last active time … will cause the
   * server to automatically set their presence to online", so `unavailable`
   * turns `online`. A user who is `offline` (not connected to an event stream,
   * or hiding) or never had presence is left alone: no update is sent to
   * everyone sharing a room each time a bot that never syncs posts. Written
   * only when the state changes or the last write is older than
   * CURRENTLY_ACTIVE_MS (a user sending many messages writes about once a
   * minute). Returns the new position, or null when nothing was written.
   */
  async bumpActivity(userId: string, audience: () => Promise<string[]>): Promise<number | null> {
    const current = await this.records.get(userId);
    if (!current || (current.presence !== 'online' && current.presence !== 'unavailable')) return null;
    const now = this.now();
    const presence = 'online';
    const fresh = now - current.last_active_ts <= CURRENTLY_ACTIVE_MS;
    if (current.presence === presence && fresh) return null;
    return this.write(userId, { presence, status_msg: current.status_msg, last_active_ts: now }, await audience());
  }

  /**
   * "Idle timeout" and "Last active ago" as updates: puts a new position on
   * each online user whose view changed since their last write only because
   * time passed — no longer currently active (after INACTIVE_ANNOUNCE_MS) or
   * idle, read as `unavailable` (after IDLE_TIMEOUT_MS) — so /sync sends the
   * `m.presence` update clients wait for. Run periodically (every client-api
   * process may: the write is a compare-and-set on the record's position, so
   * a newer write, such as fresh activity, is never overwritten and two
   * sweeps announce once). At most `limit` users per kind per call; returns
   * how many were announced.
   */
  async announceInactivity(audience: (userId: string) => Promise<string[]>, limit = 200): Promise<number> {
    const now = this.now();
    const idle = await this.records.find({ presence: 'online', phase: { $ne: 'idle' }, last_active_ts: { $gt: 0, $lte: now - IDLE_TIMEOUT_MS } }, { limit });
    const inactive = await this.records.find({ presence: 'online', phase: 'active', last_active_ts: { $gt: 0, $lte: now - INACTIVE_ANNOUNCE_MS } }, { limit });
    const seen = new Set<string>();
    let announced = 0;
    for (const record of [...idle, ...inactive]) {
      if (seen.has(record._id)) continue;
      seen.add(record._id);
      const phase = presencePhase(record.presence, record.last_active_ts, now);
      if (phase === record.phase) continue;
      const position = await this.positions.withPosition(USER_DATA_STREAMS.presence, async (position) =>
        (await this.records.update(record._id, { phase, stream: position }, { stream: record.stream })) ? position : null,
      );
      if (position === null) continue;
      await this.wake({ stream: USER_DATA_STREAMS.presence, position, user_ids: [...new Set([record._id, ...(await audience(record._id))])] });
      if (!record.remote) await this.listener?.(record._id);
      announced += 1;
    }
    return announced;
  }

  private async write(userId: string, fields: { presence: string; status_msg: string | null; last_active_ts: number }, audience: string[], notify = true): Promise<number> {
    const phase = presencePhase(fields.presence, fields.last_active_ts, this.now());
    const remote = !notify;
    const position = await this.positions.withPosition(USER_DATA_STREAMS.presence, async (position) => {
      if (!(await this.records.insert({ _id: userId, ...fields, phase, stream: position, remote }))) {
        await this.records.update(userId, { ...fields, phase, stream: position, remote }, { stream: { $lt: position } });
      }
      return position;
    });
    await this.wake({ stream: USER_DATA_STREAMS.presence, position, user_ids: [...new Set([userId, ...audience])] });
    if (notify) await this.listener?.(userId);
    return position;
  }

  /** The user's presence as clients see it, or null if the user never set any. */
  async get(userId: string): Promise<PresenceContent | null> {
    const record = await this.records.get(userId);
    return record ? this.view(record) : null;
  }

  /** Presence records of `userIds` changed in `(from, to]`, as event contents by user. */
  async changes(userIds: string[], from: number, to: number): Promise<Array<{ userId: string; content: PresenceContent }>> {
    if (userIds.length === 0) return [];
    const records = await this.records.find({ _id: { $in: userIds }, stream: { $gt: from, $lte: to } }, { sort: { stream: 1 } });
    return records.map((record) => ({ userId: record._id, content: this.view(record) }));
  }

  safePosition(): Promise<number> {
    return this.positions.safePosition(USER_DATA_STREAMS.presence);
  }

  private view(record: PresenceRecord): PresenceContent {
    const ago = record.last_active_ts > 0 ? Math.max(0, this.now() - record.last_active_ts) : undefined;
    let presence = (PRESENCE_STATES as readonly string[]).includes(record.presence) ? (record.presence as PresenceState) : 'offline';
    if (presence === 'online' && ago !== undefined && ago > IDLE_TIMEOUT_MS) presence = 'unavailable';
    const content: PresenceContent = { presence };
    if (ago !== undefined) content.last_active_ago = ago;
    if (record.status_msg !== null) content.status_msg = record.status_msg;
    content.currently_active = presence === 'online' && ago !== undefined && ago <= CURRENTLY_ACTIVE_MS;
    return content;
  }
}
