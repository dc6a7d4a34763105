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
