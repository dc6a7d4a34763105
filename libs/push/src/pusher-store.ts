import type { Collection, Doc, DocumentStore } from '@atrium/storage';

/**
 * Pushers (client-server-api "Client behaviour"; data/api/client-server/
 * pusher.yaml). One document per (app_id, pushkey, user): "the pusher with
 * this app_id and pushkey for this user is updated, or it is created if it
 * doesn't exist". `data` is the client's JSON as a string (ARCHITECTURE.md
 * "Storage").
 */
export interface PusherRecord extends Doc {
  _id: string; // app_id \n pushkey \n user_id
  user_id: string;
  app_id: string;
  pushkey: string;
  kind: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  data: string;
  /** When the pushkey was set (push_notifier.yaml `pushkey_ts`, seconds). */
  pushkey_ts: number;
}

/** A pusher as GET /pushers lists it. */
export interface Pusher {
  pushkey: string;
  kind: string;
  app_id: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag?: string;
  lang: string;
  data: Record<string, unknown>;
}

export type NewPusher = Omit<Pusher, 'profile_tag'> & { profile_tag?: string | null };

function pusherId(appId: string, pushkey: string, userId: string): string {
  return `${appId}\n${pushkey}\n${userId}`;
}

export function pusherOf(record: PusherRecord): Pusher {
  const data = JSON.parse(record.data) as Record<string, unknown>;
  const out: Pusher = {
    pushkey: record.pushkey,
    kind: record.kind,
    app_id: record.app_id,
    app_display_name: record.app_display_name,
    device_display_name: record.device_display_name,
    lang: record.lang,
    data,
  };
  if (record.profile_tag !== null) out.profile_tag = record.profile_tag;
  return out;
}

export class PusherStore {
  private constructor(
    private readonly pushers: Collection<PusherRecord>,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<PusherStore> {
    const pushers = await store.collection<PusherRecord>({ name: 'pushers', indexes: [{ fields: ['user_id'] }, { fields: ['app_id', 'pushkey'] }] });
    return new PusherStore(pushers, now);
  }

  forUser(userId: string): Promise<PusherRecord[]> {
    return this.pushers.find({ user_id: userId }, { sort: { _id: 1 } });
  }

  /** Which of these users have a pusher of `kind` (one query). */
  async usersWithPushers(userIds: readonly string[], kind = 'http'): Promise<Set<string>> {
    if (userIds.length === 0) return new Set();
    const found = await this.pushers.find({ user_id: { $in: [...userIds] }, kind });
    return new Set(found.map((p) => p.user_id));
  }

  /**
   * Creates or replaces the user's pusher. Without `append`, "the homeserver
   * must remove any other pushers with the same App ID and pushkey for
   * different users". The new one is written first, so a crash in between
   * leaves an extra pusher, never none.
   */
  async set(userId: string, pusher: NewPusher, append: boolean): Promise<void> {
    const id = pusherId(pusher.app_id, pusher.pushkey, userId);
    const existing = await this.pushers.get(id);
    await this.pushers.put({
      _id: id,
      user_id: userId,
      app_id: pusher.app_id,
      pushkey: pusher.pushkey,
      kind: pusher.kind,
      app_display_name: pusher.app_display_name,
      device_display_name: pusher.device_display_name,
      profile_tag: pusher.profile_tag ?? null,
      lang: pusher.lang,
      data: JSON.stringify(pusher.data),
      pushkey_ts: existing?.pushkey_ts ?? Math.floor(this.now() / 1000),
    });
    if (!append) {
      for (const other of await this.pushers.find({ app_id: pusher.app_id, pushkey: pusher.pushkey })) {
        if (other.user_id !== userId) await this.pushers.delete(other._id);
      }
    }
  }

  /** kind: null: "the pusher with this app_id and pushkey for this user is deleted". */
  delete(userId: string, appId: string, pushkey: string): Promise<boolean> {
    return this.pushers.delete(pusherId(appId, pushkey, userId));
  }

  /** Pushkeys a gateway answered as `rejected` ("the homeserver should remove these pushkeys", push_notifier.yaml). */
  async deleteRejected(userId: string, appId: string, pushkey: string): Promise<boolean> {
    return this.pushers.delete(pusherId(appId, pushkey, userId));
  }
}
