import { defaultPushRules, isServerDefaultRuleId, MASTER_RULE_ID } from './default-rules';
import { PUSH_RULE_KINDS, type PushAction, type PushCondition, type PushRule, type PushRuleKind, type PushRuleset, type PushRulesContent } from './types';

/**
 * A user's ruleset: their own rules merged with the server defaults, and the
 * edits the push rules API makes (data/api/client-server/pushrules.yaml).
 *
 * The stored form is the `m.push_rules` account data content, the whole
 * ruleset as clients see it ("Push Rules: Events": "The content of the event
 * is the current push rules for the user"). Reading it back keeps the user's
 * rules and only `enabled`/`actions` of server-default rules, whose
 * definitions always come from this server's defaults, so a new default rule
 * (or a fixed one) reaches users whose rules were stored before.
 */

/** A refusal of the API, carried to the HTTP layer: status and Matrix errcode. */
export class PushRuleError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
  ) {
    super(message);
    this.name = 'PushRuleError';
  }
}

const notFound = (): PushRuleError => new PushRuleError(404, 'M_NOT_FOUND', 'The push rule was not found.');
const invalid = (message: string): PushRuleError => new PushRuleError(400, 'M_INVALID_PARAM', message);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---- validation ----

const KNOWN_STRING_ACTIONS = new Set(['notify', 'dont_notify', 'coalesce']);

/** Actions: "notify", the historical ones (accepted, ignored), or a `{set_tweak}` object. */
export function validateActions(value: unknown): PushAction[] {
  if (value === undefined) throw new PushRuleError(400, 'M_MISSING_PARAM', 'Missing parameter: actions');
  if (!Array.isArray(value)) throw invalid('actions must be an array');
  return value.map((action): PushAction => {
    if (typeof action === 'string') {
      if (!KNOWN_STRING_ACTIONS.has(action)) throw invalid(`Unrecognised action: ${action}`);
      return action;
    }
    if (isObject(action) && typeof action.set_tweak === 'string' && action.set_tweak !== '') {
      // Tweaks pass through ("Tweaks are passed transparently"); highlight must be a boolean when given.
      if (action.set_tweak === 'highlight' && 'value' in action && typeof action.value !== 'boolean') throw invalid('the highlight tweak takes a boolean value');
      return action as PushAction;
    }
    throw invalid('an action is a string or an object with a set_tweak string');
  });
}

function isScalar(value: unknown): boolean {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isSafeInteger(value));
}

/** Conditions of override/underride rules (push_condition.yaml); unknown kinds are kept (they never match). */
export function validateConditions(value: unknown): PushCondition[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid('conditions must be an array');
  return value.map((condition): PushCondition => {
    if (!isObject(condition) || typeof condition.kind !== 'string') throw invalid('a condition is an object with a string kind');
    const keyed = (): void => {
      if (typeof condition.key !== 'string' || condition.key === '') throw invalid(`${condition.kind} needs a key`);
    };
    switch (condition.kind) {
      case 'event_match':
        keyed();
        if (typeof condition.pattern !== 'string') throw invalid('event_match needs a string pattern');
        break;
      case 'event_property_is':
      case 'event_property_contains':
        keyed();
        if (!('value' in condition) || !isScalar(condition.value)) throw invalid(`${condition.kind} needs a string, integer, boolean or null value`);
        break;
      case 'room_member_count':
        if (typeof condition.is !== 'string' || !/^(==|<=|>=|<|>)?[0-9]+$/.test(condition.is)) throw invalid('room_member_count needs is: an integer with an optional ==, <, >, <= or >= prefix');
        break;
      case 'sender_notification_permission':
        keyed();
        break;
      default:
        break;
    }
    return condition as PushCondition;
  });
}

/**
 * ruleId: "If the string starts with a dot ("."), the request MUST be
 * rejected as this is reserved for server-default rules. Slashes ("/") and
 * backslashes ("\") are also not allowed." Room and sender rule IDs are the
 * room's and the user's ID ("Push Rules"), so they must look like one.
 */
export function validateNewRuleId(kind: PushRuleKind, ruleId: string): void {
  if (ruleId === '') throw invalid('the rule ID is empty');
  if (isServerDefaultRuleId(ruleId)) throw invalid('rule IDs starting with "." are reserved for server-default rules');
  if (ruleId.includes('/') || ruleId.includes('\\')) throw invalid('rule IDs may not contain "/" or "\\"');
  if (kind === 'room' && !ruleId.startsWith('!')) throw invalid('the rule ID of a room rule is a room ID');
  if (kind === 'sender' && !/^@[^:]+:.+$/.test(ruleId)) throw invalid('the rule ID of a sender rule is a user ID');
}

// ---- the merged ruleset ----

/**
 * The effective ruleset of `userId` from the stored content (or null), in
 * priority order per kind: `.m.rule.master` first, then the user's rules
 * ("server-default rules … operate at a lower priority than user-defined
 * rules"), then the other server defaults.
 */
export function mergeWithDefaults(userId: string, stored: unknown): PushRuleset {
  const defaults = defaultPushRules(userId);
  const global = isObject(stored) && isObject(stored.global) ? stored.global : {};
  const out: PushRuleset = { override: [], content: [], room: [], sender: [], underride: [] };
  for (const kind of PUSH_RULE_KINDS) {
    const storedRules = Array.isArray(global[kind]) ? (global[kind] as unknown[]).filter(isObject) : [];
    const own: PushRule[] = [];
    const defaultState = new Map<string, Record<string, unknown>>();
    for (const rule of storedRules) {
      if (typeof rule.rule_id !== 'string') continue;
      if (isServerDefaultRuleId(rule.rule_id)) {
        defaultState.set(rule.rule_id, rule);
        continue;
      }
      const parsed = parseStoredRule(kind, rule);
      if (parsed) own.push(parsed);
    }
    const withState = defaults[kind].map((rule) => {
      const state = defaultState.get(rule.rule_id);
      if (!state) return rule;
      return {
        ...rule,
        enabled: typeof state.enabled === 'boolean' ? state.enabled : rule.enabled,
        actions: Array.isArray(state.actions) ? (state.actions as PushAction[]) : rule.actions,
      };
    });
    const master = withState.filter((r) => r.rule_id === MASTER_RULE_ID);
    out[kind] = [...master, ...own, ...withState.filter((r) => r.rule_id !== MASTER_RULE_ID)];
  }
  return out;
}

function parseStoredRule(kind: PushRuleKind, rule: Record<string, unknown>): PushRule | null {
  if (typeof rule.rule_id !== 'string' || !Array.isArray(rule.actions)) return null;
  const out: PushRule = { rule_id: rule.rule_id, default: false, enabled: rule.enabled !== false, actions: rule.actions as PushAction[] };
  if (kind === 'override' || kind === 'underride') out.conditions = Array.isArray(rule.conditions) ? (rule.conditions as PushCondition[]) : [];
  if (kind === 'content') {
    if (typeof rule.pattern !== 'string') return null;
    out.pattern = rule.pattern;
  }
  return out;
}

/** The account data content to store. */
export function rulesetContent(ruleset: PushRuleset): PushRulesContent {
  return { global: ruleset };
}

export function findRule(ruleset: PushRuleset, kind: PushRuleKind, ruleId: string): PushRule {
  const rule = ruleset[kind].find((r) => r.rule_id === ruleId);
  if (!rule) throw notFound();
  return rule;
}

export interface PutRuleOptions {
  before?: string;
  after?: string;
}

/**
 * PUT /pushrules/global/{kind}/{ruleId}: creates or replaces a user rule.
 * "When creating push rules, they MUST be enabled by default"; without
 * before/after a new rule becomes "the most important user defined rule among
 * rules of the same kind" and a replaced one keeps its place. before/after
 * name a user-defined rule of the same kind ("It is not possible to add a
 * rule relative to a predefined server rule"); an unknown one is the spec's
 * 400 M_UNKNOWN "before/after rule not found".
 */
export function putRule(ruleset: PushRuleset, kind: PushRuleKind, ruleId: string, body: Record<string, unknown>, options: PutRuleOptions = {}): PushRuleset {
  validateNewRuleId(kind, ruleId);
  const actions = validateActions(body.actions);
  const list = ruleset[kind];
  const existing = list.find((r) => r.rule_id === ruleId);
  const rule: PushRule = { rule_id: ruleId, default: false, enabled: existing?.enabled ?? true, actions };
  if (kind === 'override' || kind === 'underride') rule.conditions = validateConditions(body.conditions);
  if (kind === 'content') {
    if (body.pattern === undefined) throw new PushRuleError(400, 'M_MISSING_PARAM', 'Missing parameter: pattern');
    if (typeof body.pattern !== 'string' || body.pattern === '') throw invalid('pattern must be a non-empty string');
    rule.pattern = body.pattern;
  }
  for (const anchor of [options.before, options.after]) {
    if (anchor === undefined) continue;
    if (isServerDefaultRuleId(anchor)) throw invalid('a rule cannot be placed relative to a server-default rule');
    if (anchor === ruleId || !list.some((r) => r.rule_id === anchor && !r.default)) throw new PushRuleError(400, 'M_UNKNOWN', `before/after rule not found: ${anchor}`);
  }
  const without = list.filter((r) => r.rule_id !== ruleId);
  let index: number;
  if (options.before !== undefined) {
    // "If both after and before are provided, the new or updated rule must be the next most important rule with respect to the rule identified by before."
    index = without.findIndex((r) => r.rule_id === options.before);
  } else if (options.after !== undefined) {
    index = without.findIndex((r) => r.rule_id === options.after) + 1;
  } else if (existing) {
    index = list.indexOf(existing);
  } else {
    // First user rule: after .m.rule.master, which stays above everything.
    index = without.findIndex((r) => !r.default);
    if (index < 0) index = without.findIndex((r) => r.default && r.rule_id !== MASTER_RULE_ID);
    if (index < 0) index = without.length;
  }
  const next = [...without.slice(0, index), rule, ...without.slice(index)];
  return { ...ruleset, [kind]: next };
}

/** DELETE: user rules only ("server-default" rules can be disabled, not deleted). */
export function deleteRule(ruleset: PushRuleset, kind: PushRuleKind, ruleId: string): PushRuleset {
  const rule = findRule(ruleset, kind, ruleId);
  if (rule.default) throw invalid('server-default rules cannot be deleted; disable them instead');
  return { ...ruleset, [kind]: ruleset[kind].filter((r) => r !== rule) };
}

/** PUT …/enabled. */
export function setRuleEnabled(ruleset: PushRuleset, kind: PushRuleKind, ruleId: string, body: Record<string, unknown>): PushRuleset {
  const rule = findRule(ruleset, kind, ruleId);
  if (body.enabled === undefined) throw new PushRuleError(400, 'M_MISSING_PARAM', 'Missing parameter: enabled');
  if (typeof body.enabled !== 'boolean') throw invalid('enabled must be a boolean');
  const enabled = body.enabled;
  return { ...ruleset, [kind]: ruleset[kind].map((r) => (r === rule ? { ...r, enabled } : r)) };
}

/** PUT …/actions (server-default rules included). */
export function setRuleActions(ruleset: PushRuleset, kind: PushRuleKind, ruleId: string, body: Record<string, unknown>): PushRuleset {
  const rule = findRule(ruleset, kind, ruleId);
  const actions = validateActions(body.actions);
  return { ...ruleset, [kind]: ruleset[kind].map((r) => (r === rule ? { ...r, actions } : r)) };
}
