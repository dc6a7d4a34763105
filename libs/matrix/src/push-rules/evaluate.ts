import { splitPropertyPath } from '../filters/filter';
import { MASTER_RULE_ID } from './default-rules';
import { PUSH_RULE_KINDS, type PushAction, type PushCondition, type PushRule, type PushRuleKind, type PushRuleset } from './types';

/**
 * Push rule evaluation (client-server-api "Push Rules", "Conditions",
 * "Actions"), pure: the caller gathers what the conditions need (member
 * count, display name, power levels) and hands it in.
 */

/** What evaluating one event for one user needs besides the rules. */
export interface PushContext {
  /** The user whose rules these are. */
  userId: string;
  /** The user's display name in the room (contains_display_name), if any. */
  displayName?: string | null;
  /** "the current number of members in the room" (room_member_count): joined members. */
  memberCount: number;
  /** The room's m.room.power_levels content, null when the room has none. */
  powerLevels: Record<string, unknown> | null;
  /**
   * The sender's power level when the power levels event does not decide it:
   * with no m.room.power_levels the creator has 100 and others 0
   * (m.room.power_levels: "users_default ... 0"; authorization rules: the
   * creator's level is 100 without the event); room version 12 creators are
   * above any level (`Infinity`). Leave undefined to read the event only.
   */
  senderLevelOverride?: number;
}

export interface PushEvaluation {
  /** The rule that matched (null: none did, so "the homeserver MUST NOT notify the Push Gateway"). */
  rule: { kind: PushRuleKind; rule_id: string } | null;
  /** The matched rule's actions, the historical ones stripped. */
  actions: PushAction[];
  notify: boolean;
  highlight: boolean;
  /** set_tweak entries (sound, highlight, and any other tweak passed through). */
  tweaks: Record<string, unknown>;
}

const NO_MATCH: PushEvaluation = { rule: null, actions: [], notify: false, highlight: false, tweaks: {} };

/**
 * "Historical Actions": "Clients and homeservers MUST ignore these actions,
 * for instance, by stripping them from actions arrays they encounter."
 */
const HISTORICAL_ACTIONS = new Set(['dont_notify', 'coalesce']);

export function stripHistoricalActions(actions: readonly PushAction[]): PushAction[] {
  return actions.filter((a) => !(typeof a === 'string' && HISTORICAL_ACTIONS.has(a)));
}

/** What a list of actions means: notify?, the tweaks, and highlight ("If a highlight tweak is given with no value, its value is defined to be true"). */
export function interpretActions(actions: readonly PushAction[]): { notify: boolean; highlight: boolean; tweaks: Record<string, unknown> } {
  const tweaks: Record<string, unknown> = {};
  let notify = false;
  for (const action of stripHistoricalActions(actions)) {
    if (action === 'notify') notify = true;
    else if (typeof action === 'object' && action !== null && typeof action.set_tweak === 'string') {
      tweaks[action.set_tweak] = action.set_tweak === 'highlight' && !('value' in action) ? true : action.value;
    }
  }
  // "If no highlight tweak is given at all then the value of highlight is defined to be false."
  const highlight = tweaks.highlight === true;
  return { notify, highlight, tweaks };
}

// ---- appendices "Dot-separated property paths" (parsed by the filters module) ----

const ABSENT = Symbol('absent');

/** The value at a dot-separated path, or ABSENT when some step is missing or not an object. */
function propertyAt(event: Record<string, unknown>, path: string): unknown {
  let value: unknown = event;
  for (const part of splitPropertyPath(path)) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return ABSENT;
    if (!Object.prototype.hasOwnProperty.call(value, part)) return ABSENT;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

// ---- appendices "Glob-style matching" ----

/** Characters outside a word ("any character not in the sets [A-Z], [a-z], [0-9] or _"). */
const WORD_CHAR = 'A-Za-z0-9_';

function globSource(glob: string): string {
  let out = '';
  for (const c of glob) {
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else out += c.replace(/[\\^$.*+?()[\]{}|/-]/g, (m) => `\\${m}`);
  }
  return out;
}

const globCache = new Map<string, RegExp>();

/**
 * A compiled glob. "The match is performed case-insensitively"; `*` "matches
 * zero or more characters" (any, newlines included: flag s), `?` "exactly one
 * character" (a code point: flag u). With `words`, the glob must match a
 * substring that "starts and ends at a word boundary" (the content.body rule).
 */
export function globToRegExp(glob: string, words: boolean): RegExp {
  const cacheKey = `${words ? 'w' : 'f'}${glob}`;
  let re = globCache.get(cacheKey);
  if (!re) {
    const source = globSource(glob);
    re = words ? new RegExp(`(?<![${WORD_CHAR}])(?:${source})(?![${WORD_CHAR}])`, 'isu') : new RegExp(`^(?:${source})$`, 'isu');
    if (globCache.size > 10_000) globCache.clear();
    globCache.set(cacheKey, re);
  }
  return re;
}

/** event_match on a string value (content.body: word-bounded substring; anything else: the entire value). */
export function globMatches(pattern: string, value: string, wordBoundaries: boolean): boolean {
  return globToRegExp(pattern, wordBoundaries).test(value);
}

// ---- conditions ----

/** "integers in the range of [-(2**53)+1, (2**53)-1]" and the other non-compound canonical JSON values. */
function isPushScalar(value: unknown): value is string | number | boolean | null {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isSafeInteger(value));
}

const MEMBER_COUNT = /^(==|<=|>=|<|>)?([0-9]+)$/;

/** room_member_count's `is`: "A decimal integer optionally prefixed by one of, ==, <, >, >= or <=". */
export function memberCountMatches(is: string, count: number): boolean {
  const m = MEMBER_COUNT.exec(is);
  if (!m) return false;
  const n = Number(m[2]);
  switch (m[1] ?? '==') {
    case '==':
      return count === n;
    case '<':
      return count < n;
    case '>':
      return count > n;
    case '<=':
      return count <= n;
    case '>=':
      return count >= n;
    default:
      return false;
  }
}

function integerOr(value: unknown, fallback: number): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  // Room versions before 10 allow string levels ("Power levels ... may be strings in older room versions").
  if (typeof value === 'string' && /^[+-]?[0-9]+$/.test(value.trim())) return Number(value.trim());
  return fallback;
}

function objectOr(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/**
 * sender_notification_permission: "ensuring the sender of the event has high
 * enough power to trigger the notification"; the level needed is
 * `notifications[key]` of m.room.power_levels (`room` defaults to 50 there).
 */
export function senderHasNotificationPermission(key: string, sender: string, context: PushContext): boolean {
  const levels = context.powerLevels;
  const senderLevel = context.senderLevelOverride ?? (levels ? integerOr(objectOr(levels.users)[sender], integerOr(levels.users_default, 0)) : 0);
  const needed = integerOr(objectOr(levels?.notifications)[key], 50);
  return senderLevel >= needed;
}

/** True if the body contains the display name as a whole word ("contains_display_name", deprecated since v1.17 but still defined). */
function containsDisplayName(body: unknown, displayName: string | null | undefined): boolean {
  if (typeof body !== 'string' || !displayName) return false;
  const escaped = displayName.replace(/[\\^$.*+?()[\]{}|/-]/g, (m) => `\\${m}`);
  return new RegExp(`(?<![${WORD_CHAR}])${escaped}(?![${WORD_CHAR}])`, 'iu').test(body);
}

/** One condition; "Unrecognised conditions MUST NOT match any events". */
export function conditionMatches(condition: PushCondition, event: Record<string, unknown>, context: PushContext): boolean {
  switch (condition.kind) {
    case 'event_match': {
      if (typeof condition.key !== 'string' || typeof condition.pattern !== 'string') return false;
      const value = propertyAt(event, condition.key);
      // "If the property … is completely absent from the event, or does not have a string value, then the condition will not match, even if pattern is *."
      if (typeof value !== 'string') return false;
      return globMatches(condition.pattern, value, condition.key === 'content.body');
    }
    case 'event_property_is': {
      if (typeof condition.key !== 'string' || !isPushScalar(condition.value)) return false;
      const value = propertyAt(event, condition.key);
      return isPushScalar(value) && value === condition.value;
    }
    case 'event_property_contains': {
      if (typeof condition.key !== 'string' || !isPushScalar(condition.value)) return false;
      const value = propertyAt(event, condition.key);
      // "Array values not of those types are ignored."
      return Array.isArray(value) && value.some((item) => isPushScalar(item) && item === condition.value);
    }
    case 'contains_display_name':
      return containsDisplayName(propertyAt(event, 'content.body'), context.displayName);
    case 'room_member_count':
      return typeof condition.is === 'string' && memberCountMatches(condition.is, context.memberCount);
    case 'sender_notification_permission':
      return typeof condition.key === 'string' && typeof event.sender === 'string' && senderHasNotificationPermission(condition.key, event.sender, context);
    default:
      return false;
  }
}

/** Whether one rule of `kind` matches (its enabled flag is the caller's). */
export function ruleMatches(kind: PushRuleKind, rule: PushRule, event: Record<string, unknown>, context: PushContext): boolean {
  switch (kind) {
    case 'override':
    case 'underride':
      // "A rule with no conditions always matches."
      return (rule.conditions ?? []).every((c) => conditionMatches(c, event, context));
    case 'content': {
      // Content rules match "any substring of the content.body property which starts and ends at a word boundary".
      if (typeof rule.pattern !== 'string') return false;
      const body = propertyAt(event, 'content.body');
      return typeof body === 'string' && globMatches(rule.pattern, body, true);
    }
    case 'room':
      // "The rule_id of a room rule is always the ID of the room that it affects."
      return event.room_id === rule.rule_id;
    case 'sender':
      return event.sender === rule.rule_id;
    default:
      return false;
  }
}

/**
 * The first enabled rule that matches, in the kinds' order (override,
 * content, room, sender, underride) and each kind's list order; "Only actions
 * for highest priority rule" count. `.m.rule.master` is checked before
 * everything else whatever its place ("always a higher priority than other
 * rules, even user defined ones"). "Homeservers MUST NOT notify the Push
 * Gateway for events that the user has sent themselves": an own event never matches.
 */
export function evaluatePushRules(ruleset: PushRuleset, event: Record<string, unknown>, context: PushContext): PushEvaluation {
  if (event.sender === context.userId) return NO_MATCH;
  const master = ruleset.override.find((r) => r.rule_id === MASTER_RULE_ID);
  const ordered: Array<[PushRuleKind, PushRule]> = [];
  if (master) ordered.push(['override', master]);
  for (const kind of PUSH_RULE_KINDS) for (const rule of ruleset[kind]) if (rule !== master) ordered.push([kind, rule]);
  for (const [kind, rule] of ordered) {
    if (!rule.enabled) continue; // "Disabled rules never match."
    if (!ruleMatches(kind, rule, event, context)) continue;
    const actions = stripHistoricalActions(rule.actions);
    return { rule: { kind, rule_id: rule.rule_id }, actions, ...interpretActions(actions) };
  }
  return NO_MATCH;
}
