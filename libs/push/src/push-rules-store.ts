import { mergeWithDefaults, rulesetContent, type PushRuleset } from '@atrium/matrix';
import type { AccountDataStore } from '@atrium/user-data';

/**
 * A user's push rules, kept as the `m.push_rules` global account data
 * (client-server-api "Push Rules: Events": "When a user changes their push
 * rules a m.push_rules event is sent to all clients in the account_data
 * section of their next /sync request. The content of the event is the
 * current push rules for the user"), written through libs/user-data so the
 * account data stream and section carry it.
 *
 * Edits are read-modify-write of that one document. AccountDataStore offers
 * no compare-and-set for arbitrary types, so edits of one user are queued
 * in this process; two client-api replicas editing the same user's rules in
 * the same instant can still lose one edit (the later write wins). A
 * conditional write in AccountDataStore would close that.
 */
export const PUSH_RULES_EVENT_TYPE = 'm.push_rules';

export class PushRulesStore {
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly accountData: AccountDataStore) {}

  /** The effective ruleset: the stored rules merged with the server defaults. */
  async get(userId: string): Promise<PushRuleset> {
    return mergeWithDefaults(userId, await this.accountData.get(userId, null, PUSH_RULES_EVENT_TYPE));
  }

  /** Applies `change` to the current ruleset and stores the result (a thrown error stores nothing). */
  update(userId: string, change: (ruleset: PushRuleset) => PushRuleset): Promise<PushRuleset> {
    const previous = this.queues.get(userId) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(async () => {
        const updated = change(await this.get(userId));
        await this.accountData.set(userId, null, PUSH_RULES_EVENT_TYPE, rulesetContent(updated) as unknown as Record<string, unknown>);
        return updated;
      });
    this.queues.set(userId, next);
    void next.finally(() => {
      if (this.queues.get(userId) === next) this.queues.delete(userId);
    }).catch(() => undefined);
    return next;
  }
}
