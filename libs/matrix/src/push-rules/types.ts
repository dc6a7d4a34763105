/**
 * Push rule types (client-server-api "Push Rules"; data/api/client-server/
 * definitions/push_rule.yaml, push_condition.yaml, push_ruleset.yaml).
 */

/** The kinds, "in the order that they are checked" (client-server-api "Push Rules"). */
export const PUSH_RULE_KINDS = ['override', 'content', 'room', 'sender', 'underride'] as const;
export type PushRuleKind = (typeof PUSH_RULE_KINDS)[number];

export function isPushRuleKind(value: string): value is PushRuleKind {
  return (PUSH_RULE_KINDS as readonly string[]).includes(value);
}

/** A non-compound canonical JSON value (event_property_is / event_property_contains). */
export type PushScalar = string | number | boolean | null;

export interface PushCondition {
  kind: string;
  key?: string;
  pattern?: string;
  value?: PushScalar;
  is?: string;
  [extra: string]: unknown;
}

/** `notify`, or a `set_tweak` dictionary; unknown actions pass through untouched. */
export type PushAction = string | { set_tweak: string; value?: unknown; [extra: string]: unknown };

export interface PushRule {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  actions: PushAction[];
  conditions?: PushCondition[];
  /** content rules only. */
  pattern?: string;
}

/** A ruleset: one list per kind, each in priority order (push_ruleset.yaml). */
export type PushRuleset = Record<PushRuleKind, PushRule[]>;

/** The `m.push_rules` account data content (m.push_rules event schema). */
export interface PushRulesContent {
  global: PushRuleset;
}

export function emptyRuleset(): PushRuleset {
  return { override: [], content: [], room: [], sender: [], underride: [] };
}
