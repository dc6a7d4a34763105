import type { Collection, Doc, DocumentStore } from '@atrium/storage';

/**
 * User profiles (client-server-api "Profiles", profile.yaml): `displayname`,
 * `avatar_url`, `m.tz` and custom namespaced fields.
 *
 * The whole profile is one JSON string (client JSON stays a string); the two
 * fields other modules read without parsing (member events carry them) are
 * copied beside it. `version` makes every change a compare-and-set, since a
 * profile change is read-modify-write and the port has no transactions.
 */
export interface ProfileRecord extends Doc {
  _id: string; // user ID
  fields: string;
  displayname: string | null;
  avatar_url: string | null;
  version: number;
  updated_ts: number;
}

export type ProfileFields = Record<string, unknown>;

const MAX_CAS_ATTEMPTS = 20;

function parseFields(json: string): ProfileFields {
  const value: unknown = JSON.parse(json);
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as ProfileFields) : {};
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

export class ProfileStore {
  private constructor(
    private readonly profiles: Collection<ProfileRecord>,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<ProfileStore> {
    return new ProfileStore(await store.collection<ProfileRecord>({ name: 'profiles' }), now);
  }

  /** The user's profile fields (`{}` when none was ever set). */
  async get(userId: string): Promise<ProfileFields> {
    const record = await this.profiles.get(userId);
    return record ? parseFields(record.fields) : {};
  }

  /**
   * The `displayname` and `avatar_url` to put in a local user's
   * `m.room.member` join events: "when homeservers emit room membership
   * events for their own users, they should include the display name and
   * avatar URL fields in these events" ("Events on Change of Profile
   * Information"). Empty values are left out.
   */
  async memberFields(userId: string): Promise<{ displayname?: string; avatar_url?: string }> {
    const record = await this.profiles.get(userId);
    const out: { displayname?: string; avatar_url?: string } = {};
    if (record?.displayname) out.displayname = record.displayname;
    if (record?.avatar_url) out.avatar_url = record.avatar_url;
    return out;
  }

  /**
   * Applies `change` to the fields and stores the result. `change` may throw
   * (a size limit) and sees the current fields, so the limit is checked
   * against what is really stored. Returns the fields before and after.
   */
  async update(userId: string, change: (fields: ProfileFields) => ProfileFields): Promise<{ before: ProfileFields; after: ProfileFields }> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = await this.profiles.get(userId);
      const before = current ? parseFields(current.fields) : {};
      const after = change({ ...before });
      const doc = {
        fields: JSON.stringify(after),
        displayname: stringOrNull(after.displayname),
        avatar_url: stringOrNull(after.avatar_url),
        updated_ts: this.now(),
      };
      const ok = current
        ? await this.profiles.update(userId, { ...doc, version: current.version + 1 }, { version: current.version })
        : await this.profiles.insert({ _id: userId, ...doc, version: 1 });
      if (ok) return { before, after };
    }
    throw new Error(`profile of ${userId}: too many concurrent writes`);
  }
}
