import type { PushRule, PushRuleset } from './types';

/**
 * The server-default rules of client-server-api "Predefined Rules" (spec
 * v1.19, in its order). Since v1.17 the legacy rules that looked for mentions
 * in the body (`.m.rule.contains_display_name`, `.m.rule.roomnotif`,
 * `.m.rule.contains_user_name`) are removed, so there are no default content
 * rules. "[the user's Matrix ID]" is filled in per user.
 */
const SOUND_DEFAULT = { set_tweak: 'sound', value: 'default' };
const HIGHLIGHT = { set_tweak: 'highlight' };

/** `.m.rule.master`: "Unlike other server-default rules, this one has always a higher priority than other rules, even user defined ones." */
export const MASTER_RULE_ID = '.m.rule.master';

function overrideRules(userId: string): PushRule[] {
  return [
    { rule_id: MASTER_RULE_ID, default: true, enabled: false, conditions: [], actions: [] },
    {
      rule_id: '.m.rule.suppress_notices',
      default: true,
      enabled: true,
      conditions: [{ kind: 'event_match', key: 'content.msgtype', pattern: 'm.notice' }],
      actions: [],
    },
    {
      rule_id: '.m.rule.invite_for_me',
      default: true,
      enabled: true,
      conditions: [
        { key: 'type', kind: 'event_match', pattern: 'm.room.member' },
        { key: 'content.membership', kind: 'event_match', pattern: 'invite' },
        { key: 'state_key', kind: 'event_match', pattern: userId },
      ],
      actions: ['notify', SOUND_DEFAULT],
    },
    {
      rule_id: '.m.rule.member_event',
      default: true,
      enabled: true,
      conditions: [{ key: 'type', kind: 'event_match', pattern: 'm.room.member' }],
      actions: [],
    },
    {
      rule_id: '.m.rule.is_user_mention',
      default: true,
      enabled: true,
      conditions: [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: userId }],
      actions: ['notify', SOUND_DEFAULT, HIGHLIGHT],
    },
    {
      rule_id: '.m.rule.is_room_mention',
      default: true,
      enabled: true,
      conditions: [
        { kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true },
        { kind: 'sender_notification_permission', key: 'room' },
      ],
      actions: ['notify', HIGHLIGHT],
    },
    {
      rule_id: '.m.rule.tombstone',
      default: true,
      enabled: true,
      conditions: [
        { kind: 'event_match', key: 'type', pattern: 'm.room.tombstone' },
        { kind: 'event_match', key: 'state_key', pattern: '' },
      ],
      actions: ['notify', HIGHLIGHT],
    },
    {
      rule_id: '.m.rule.reaction',
      default: true,
      enabled: true,
      conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.reaction' }],
      actions: [],
    },
    {
      rule_id: '.m.rule.room.server_acl',
      default: true,
      enabled: true,
      conditions: [
        { kind: 'event_match', key: 'type', pattern: 'm.room.server_acl' },
        { kind: 'event_match', key: 'state_key', pattern: '' },
      ],
      actions: [],
    },
    {
      rule_id: '.m.rule.suppress_edits',
      default: true,
      enabled: true,
      conditions: [{ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' }],
      actions: [],
    },
  ];
}

function underrideRules(): PushRule[] {
  return [
    {
      rule_id: '.m.rule.call',
      default: true,
      enabled: true,
      conditions: [{ key: 'type', kind: 'event_match', pattern: 'm.call.invite' }],
      actions: ['notify', { set_tweak: 'sound', value: 'ring' }],
    },
    {
      rule_id: '.m.rule.encrypted_room_one_to_one',
      default: true,
      enabled: true,
      conditions: [
        { kind: 'room_member_count', is: '2' },
        { kind: 'event_match', key: 'type', pattern: 'm.room.encrypted' },
      ],
      actions: ['notify', SOUND_DEFAULT],
    },
    {
      rule_id: '.m.rule.room_one_to_one',
      default: true,
      enabled: true,
      conditions: [
        { kind: 'room_member_count', is: '2' },
        { kind: 'event_match', key: 'type', pattern: 'm.room.message' },
      ],
      actions: ['notify', SOUND_DEFAULT],
    },
    {
      rule_id: '.m.rule.message',
      default: true,
      enabled: true,
      conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.room.message' }],
      actions: ['notify'],
    },
    {
      rule_id: '.m.rule.encrypted',
      default: true,
      enabled: true,
      conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.room.encrypted' }],
      actions: ['notify'],
    },
  ];
}

/** The server-default ruleset for `userId` (fresh objects: callers may change them). */
export function defaultPushRules(userId: string): PushRuleset {
  return { override: overrideRules(userId), content: [], room: [], sender: [], underride: underrideRules() };
}

/** "The rule_id for all server-default rules MUST start with a dot". */
export function isServerDefaultRuleId(ruleId: string): boolean {
  return ruleId.startsWith('.');
}
