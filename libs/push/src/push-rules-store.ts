import { mergeWithDefaults, rulesetContent, type PushRuleset, type PushRulesContent } from '@atrium/matrix';
import type { AccountDataStore } from '@atrium/user-data';

/**
 * A user's push rules, kept as the `m.push_rules` global account data
 * (client-server-api "Push Rules: Events": "When a user changes their push
 * rules a m.push_rules event is sent to all clients in the account_data
 * section of their next /sync request. The content of the event is the
 * current push rules for the user"), written through libs/user-data so the
 * account data stream and section carry it.
 *
 * Edits are a compare-and-set on that document (AccountDataStore.update), so
 * two client-api replicas editing one user's rules at once lose no edit
 * (ARCHITECTURE.md rule 4).
 */
export const PUSH_RULES_EVENT_TYPE = 'm.push_rules';

export class PushRulesStore {
  constructor(private readonly accountData: AccountDataStore) {}

  /** The effective ruleset: the stored rules merged with the server defaults. */
  async get(userId: string): Promise<PushRuleset> {
    return mergeWithDefaults(userId, await this.accountData.get(userId, null, PUSH_RULES_EVENT_TYPE));
  }

  /** Applies `change` to the current ruleset and stores the result (a thrown error stores nothing). */
  async update(userId: string, change: (ruleset: PushRuleset) => PushRuleset): Promise<PushRuleset> {
    const content = await this.accountData.update(userId, null, PUSH_RULES_EVENT_TYPE, (current) => rulesetContent(change(mergeWithDefaults(userId, current))) as unknown as Record<string, unknown>);
    return (content as unknown as PushRulesContent).global;
  }
}

/** Users whose rulesets a CachedPushRules keeps; past this it starts over (memory stays bounded). */
const MAX_CACHED_RULESETS = 20_000;

/**
 * Rulesets read once and kept while the `account_data` stream (where
 * `m.push_rules` lives) has not moved, for the push gateway, which otherwise
 * reads every member's rules for every event batch (in a 50-member room,
 * ~49 reads per message).
 *
 * `refresh()` (once per batch) reads the stream's highest allocated position
 * M and then its safe position S. If S ≥ M, every account-data write up to M
 * has landed, so rulesets read from then on are current as long as M stays
 * the same (no write can land without a new position). Otherwise writes are
 * in flight and the cache serves this batch only. Any change to anyone's
 * account data empties it: correctness needs no per-user bookkeeping.
 */
export class CachedPushRules {
  private readonly cache = new Map<string, Promise<PushRuleset>>();
  /** The highest position when the cache was filled; null when it must not outlive the current batch. */
  private trustedAt: number | null = null;

  constructor(
    private readonly rules: PushRulesStore,
    private readonly positions: { highest(): Promise<number>; safe(): Promise<number> },
  ) {}

  async refresh(): Promise<void> {
    const highest = await this.positions.highest();
    const safe = await this.positions.safe();
    if (this.trustedAt === null || this.trustedAt !== highest || this.cache.size > MAX_CACHED_RULESETS) this.cache.clear();
    this.trustedAt = safe >= highest ? highest : null;
  }

  get(userId: string): Promise<PushRuleset> {
    let ruleset = this.cache.get(userId);
    if (!ruleset) {
      ruleset = this.rules.get(userId);
      this.cache.set(userId, ruleset);
      // A failed read is retried next time rather than remembered.
      ruleset.catch(() => {
        if (this.cache.get(userId) === ruleset) this.cache.delete(userId);
      });
    }
    return ruleset;
  }
}
