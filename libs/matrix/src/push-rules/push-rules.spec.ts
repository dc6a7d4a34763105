import {
  conditionMatches,
  defaultPushRules,
  deleteRule,
  evaluatePushRules,
  globMatches,
  memberCountMatches,
  mergeWithDefaults,
  PushRuleError,
  putRule,
  rulesetContent,
  setRuleActions,
  setRuleEnabled,
  type PushContext,
} from './index';

const ME = '@alice:example.org';
const ctx = (over: Partial<PushContext> = {}): PushContext => ({ userId: ME, memberCount: 5, powerLevels: null, displayName: 'Alice', ...over });
const message = (content: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  type: 'm.room.message',
  sender: '@bob:example.org',
  room_id: '!room:example.org',
  event_id: '$e',
  content,
  ...extra,
});

function refusal(call: () => unknown): PushRuleError {
  try {
    call();
  } catch (err) {
    if (err instanceof PushRuleError) return err;
    throw err;
  }
  throw new Error('expected a PushRuleError');
}

describe('event_match (spec "Conditions" examples)', () => {
  const topic = (value: unknown) => ({ type: 'm.room.topic', state_key: '', sender: '@example:example.org', content: { topic: value } });
  const cond = { kind: 'event_match', key: 'content.topic', pattern: 'lunc?*' };
  it('matches "Lunch plans" and "LUNCH", not " lunch", "lunc" or null', () => {
    expect(conditionMatches(cond, topic('Lunch plans'), ctx())).toBe(true);
    expect(conditionMatches(cond, topic('LUNCH'), ctx())).toBe(true);
    expect(conditionMatches(cond, topic(' lunch'), ctx())).toBe(false);
    expect(conditionMatches(cond, topic('lunc'), ctx())).toBe(false);
    expect(conditionMatches(cond, topic(null), ctx())).toBe(false);
  });
  it('an absent property does not match even *', () => {
    expect(conditionMatches({ kind: 'event_match', key: 'content.nope', pattern: '*' }, topic('x'), ctx())).toBe(false);
  });
  it('content.body matches at word boundaries: "ex*ple"', () => {
    const c = { kind: 'event_match', key: 'content.body', pattern: 'ex*ple' };
    expect(conditionMatches(c, message({ body: 'An example event.' }), ctx())).toBe(true);
    expect(conditionMatches(c, message({ body: 'exple' }), ctx())).toBe(true);
    expect(conditionMatches(c, message({ body: 'An exciting triple-whammy' }), ctx())).toBe(true);
    expect(conditionMatches(c, message({ body: 'Anexample' }), ctx())).toBe(false);
    expect(conditionMatches(c, message({ body: 'examples' }), ctx())).toBe(false);
  });
  it('globs escape regex characters', () => {
    expect(globMatches('a.b', 'a.b', false)).toBe(true);
    expect(globMatches('a.b', 'axb', false)).toBe(false);
    expect(globMatches('(x)', '(X)', false)).toBe(true);
  });
});

describe('event_property_is / event_property_contains', () => {
  const create = (federate: unknown) => ({ type: 'm.room.create', state_key: '', sender: '@example:example.org', content: { 'm.federate': federate } });
  const cond = { kind: 'event_property_is', key: 'content.m\\.federate', value: true };
  it('matches true, not "true" or 1', () => {
    expect(conditionMatches(cond, create(true), ctx())).toBe(true);
    expect(conditionMatches(cond, create('true'), ctx())).toBe(false);
    expect(conditionMatches(cond, create(1), ctx())).toBe(false);
  });
  it('contains: exact array members only', () => {
    const ev = { type: 'm.room.canonical_alias', content: { alt_aliases: ['#somewhere:example.org', '#myroom:example.com'] } };
    expect(conditionMatches({ kind: 'event_property_contains', key: 'content.alt_aliases', value: '#myroom:example.com' }, ev, ctx())).toBe(true);
    expect(conditionMatches({ kind: 'event_property_contains', key: 'content.alt_aliases', value: ':example.com' }, ev, ctx())).toBe(false);
    expect(conditionMatches({ kind: 'event_property_contains', key: 'content.alias', value: 'x' }, ev, ctx())).toBe(false);
  });
});

describe('room_member_count, sender_notification_permission, contains_display_name, unknown', () => {
  it('compares with each prefix', () => {
    expect(memberCountMatches('2', 2)).toBe(true);
    expect(memberCountMatches('==2', 3)).toBe(false);
    expect(memberCountMatches('<10', 9)).toBe(true);
    expect(memberCountMatches('<=10', 10)).toBe(true);
    expect(memberCountMatches('>=10', 9)).toBe(false);
    expect(memberCountMatches('>1', 2)).toBe(true);
    expect(memberCountMatches('about 2', 2)).toBe(false);
  });
  it('reads notifications.room (default 50) against the sender level', () => {
    const c = { kind: 'sender_notification_permission', key: 'room' };
    const ev = message({ body: 'hi' });
    expect(conditionMatches(c, ev, ctx({ powerLevels: { users: { '@bob:example.org': 50 } } }))).toBe(true);
    expect(conditionMatches(c, ev, ctx({ powerLevels: { users: {}, users_default: 0 } }))).toBe(false);
    expect(conditionMatches(c, ev, ctx({ powerLevels: { users_default: 10, notifications: { room: 10 } } }))).toBe(true);
    expect(conditionMatches(c, ev, ctx({ powerLevels: null, senderLevelOverride: 100 }))).toBe(true);
  });
  it('contains_display_name is a whole-word, case-insensitive match', () => {
    const c = { kind: 'contains_display_name' };
    expect(conditionMatches(c, message({ body: 'hey alice!' }), ctx())).toBe(true);
    expect(conditionMatches(c, message({ body: 'malice' }), ctx())).toBe(false);
    expect(conditionMatches(c, message({ body: 'alice' }), ctx({ displayName: null }))).toBe(false);
  });
  it('unrecognised conditions never match', () => {
    expect(conditionMatches({ kind: 'org.example.whatever' }, message({ body: 'x' }), ctx())).toBe(false);
  });
});

describe('the predefined rules', () => {
  const rules = defaultPushRules(ME);
  it('are listed in the spec order', () => {
    expect(rules.override.map((r) => r.rule_id)).toEqual([
      '.m.rule.master',
      '.m.rule.suppress_notices',
      '.m.rule.invite_for_me',
      '.m.rule.member_event',
      '.m.rule.is_user_mention',
      '.m.rule.is_room_mention',
      '.m.rule.tombstone',
      '.m.rule.reaction',
      '.m.rule.room.server_acl',
      '.m.rule.suppress_edits',
    ]);
    expect(rules.content).toEqual([]);
    expect(rules.underride.map((r) => r.rule_id)).toEqual(['.m.rule.call', '.m.rule.encrypted_room_one_to_one', '.m.rule.room_one_to_one', '.m.rule.message', '.m.rule.encrypted']);
  });
  it('a message notifies without highlight; a user mention highlights with sound', () => {
    expect(evaluatePushRules(rules, message({ msgtype: 'm.text', body: 'hello' }), ctx())).toMatchObject({ notify: true, highlight: false, rule: { rule_id: '.m.rule.message' } });
    const mention = evaluatePushRules(rules, message({ body: 'hi', 'm.mentions': { user_ids: [ME] } }), ctx());
    expect(mention).toMatchObject({ notify: true, highlight: true, tweaks: { sound: 'default', highlight: true }, rule: { rule_id: '.m.rule.is_user_mention' } });
  });
  it('a body mention alone no longer highlights (v1.17 removed the legacy rules)', () => {
    expect(evaluatePushRules(rules, message({ body: 'Alice @alice:example.org' }), ctx())).toMatchObject({ highlight: false, notify: true });
  });
  it('@room needs the sender to have the room notification level', () => {
    const ev = message({ body: '@room', 'm.mentions': { room: true } });
    expect(evaluatePushRules(rules, ev, ctx({ powerLevels: { users: { '@bob:example.org': 100 } } }))).toMatchObject({ highlight: true, rule: { rule_id: '.m.rule.is_room_mention' } });
    expect(evaluatePushRules(rules, ev, ctx({ powerLevels: { users: {} } })).rule?.rule_id).toBe('.m.rule.message');
  });
  it('one-to-one rooms ring with sound, encrypted too; notices, edits and reactions are silent', () => {
    expect(evaluatePushRules(rules, message({ body: 'x' }), ctx({ memberCount: 2 }))).toMatchObject({ rule: { rule_id: '.m.rule.room_one_to_one' }, tweaks: { sound: 'default' } });
    expect(evaluatePushRules(rules, { type: 'm.room.encrypted', sender: '@bob:example.org', content: {} }, ctx({ memberCount: 2 })).rule?.rule_id).toBe('.m.rule.encrypted_room_one_to_one');
    expect(evaluatePushRules(rules, { type: 'm.room.encrypted', sender: '@bob:example.org', content: {} }, ctx()).rule?.rule_id).toBe('.m.rule.encrypted');
    expect(evaluatePushRules(rules, message({ msgtype: 'm.notice', body: 'bot' }), ctx())).toMatchObject({ notify: false, rule: { rule_id: '.m.rule.suppress_notices' } });
    expect(evaluatePushRules(rules, message({ body: '* x', 'm.relates_to': { rel_type: 'm.replace', event_id: '$a' } }), ctx()).notify).toBe(false);
    expect(evaluatePushRules(rules, { type: 'm.reaction', sender: '@bob:example.org', content: {} }, ctx()).notify).toBe(false);
  });
  it('invites for me notify, other member events do not; tombstones highlight; calls ring', () => {
    const invite = { type: 'm.room.member', state_key: ME, sender: '@bob:example.org', content: { membership: 'invite' } };
    expect(evaluatePushRules(rules, invite, ctx()).rule?.rule_id).toBe('.m.rule.invite_for_me');
    expect(evaluatePushRules(rules, { ...invite, state_key: '@carol:example.org' }, ctx()).notify).toBe(false);
    expect(evaluatePushRules(rules, { type: 'm.room.tombstone', state_key: '', sender: '@bob:example.org', content: {} }, ctx()).highlight).toBe(true);
    expect(evaluatePushRules(rules, { type: 'm.call.invite', sender: '@bob:example.org', content: {} }, ctx()).tweaks).toEqual({ sound: 'ring' });
  });
  it('never notifies for the user\'s own events; the master rule silences all when enabled', () => {
    expect(evaluatePushRules(rules, message({ body: 'x' }, { sender: ME }), ctx()).notify).toBe(false);
    const muted = setRuleEnabled(mergeWithDefaults(ME, null), 'override', '.m.rule.master', { enabled: true });
    const withOwn = putRule(muted, 'override', 'mine', { actions: ['notify'] });
    expect(evaluatePushRules(withOwn, message({ body: 'x' }), ctx())).toMatchObject({ notify: false, rule: { rule_id: '.m.rule.master' } });
  });
});

describe('the spec "Examples" of the push rules API', () => {
  let rules = mergeWithDefaults(ME, null);
  it('a room rule with no actions silences that room', () => {
    rules = putRule(rules, 'room', '!dj234r78wl45Gh4D:matrix.org', { actions: [] });
    expect(evaluatePushRules(rules, message({ body: 'x' }, { room_id: '!dj234r78wl45Gh4D:matrix.org' }), ctx())).toMatchObject({ notify: false, rule: { kind: 'room' } });
  });
  it('a sender rule silences a spambot', () => {
    rules = putRule(rules, 'sender', '@spambot:matrix.org', { actions: [] });
    expect(evaluatePushRules(rules, message({ body: 'x' }, { sender: '@spambot:matrix.org' }), ctx()).notify).toBe(false);
  });
  it('content "cake" with a sound, then "cake*lie" before it', () => {
    rules = putRule(rules, 'content', 'SSByZWFsbHkgbGlrZSBjYWtl', { pattern: 'cake', actions: ['notify', { set_tweak: 'sound', value: 'cakealarm.wav' }] });
    expect(evaluatePushRules(rules, message({ body: 'I like cake!' }), ctx()).tweaks).toEqual({ sound: 'cakealarm.wav' });
    expect(evaluatePushRules(rules, message({ body: 'pancakes' }), ctx()).rule?.rule_id).toBe('.m.rule.message');
    rules = putRule(rules, 'content', 'U3BvbmdlIGNha2UgaXMgYmVzdA', { pattern: 'cake*lie', actions: ['notify'] }, { before: 'SSByZWFsbHkgbGlrZSBjYWtl' });
    expect(rules.content.map((r) => r.rule_id)).toEqual(['U3BvbmdlIGNha2UgaXMgYmVzdA', 'SSByZWFsbHkgbGlrZSBjYWtl']);
    expect(evaluatePushRules(rules, message({ body: 'the cake is a lie' }), ctx()).rule?.rule_id).toBe('U3BvbmdlIGNha2UgaXMgYmVzdA');
  });
  it('beer in rooms of 10 or fewer, above content rules, below the master rule', () => {
    rules = putRule(rules, 'override', 'U2VlIHlvdSBpbiBUaGUgRHVrZQ', {
      conditions: [
        { kind: 'event_match', key: 'content.body', pattern: 'beer' },
        { kind: 'room_member_count', is: '<=10' },
      ],
      actions: ['notify', { set_tweak: 'sound', value: 'beeroclock.wav' }],
    });
    expect(rules.override[0].rule_id).toBe('.m.rule.master');
    expect(rules.override[1].rule_id).toBe('U2VlIHlvdSBpbiBUaGUgRHVrZQ');
    expect(evaluatePushRules(rules, message({ body: 'beer and cake' }), ctx({ memberCount: 10 })).tweaks).toEqual({ sound: 'beeroclock.wav' });
    expect(evaluatePushRules(rules, message({ body: 'beer and cake' }), ctx({ memberCount: 11 })).tweaks).toEqual({ sound: 'cakealarm.wav' });
  });
  it('round-trips through the stored content, keeping default rule edits', () => {
    rules = setRuleActions(rules, 'underride', '.m.rule.message', { actions: ['notify', { set_tweak: 'highlight', value: false }] });
    const again = mergeWithDefaults(ME, JSON.parse(JSON.stringify(rulesetContent(rules))));
    expect(again).toEqual(rules);
  });
});

describe('API refusals', () => {
  const rules = mergeWithDefaults(ME, null);
  it('rule IDs: leading dot, slashes, backslashes, non-room/non-user IDs', () => {
    expect(refusal(() => putRule(rules, 'override', '.mine', { actions: [] })).errcode).toBe('M_INVALID_PARAM');
    expect(refusal(() => putRule(rules, 'override', 'a/b', { actions: [] })).errcode).toBe('M_INVALID_PARAM');
    expect(refusal(() => putRule(rules, 'override', 'a\\b', { actions: [] })).errcode).toBe('M_INVALID_PARAM');
    expect(refusal(() => putRule(rules, 'room', 'notaroom', { actions: [] })).errcode).toBe('M_INVALID_PARAM');
    expect(refusal(() => putRule(rules, 'sender', 'bob', { actions: [] })).errcode).toBe('M_INVALID_PARAM');
  });
  it('bodies: missing actions, bad actions, missing or bad pattern, bad conditions', () => {
    expect(refusal(() => putRule(rules, 'override', 'x', {})).errcode).toBe('M_MISSING_PARAM');
    expect(refusal(() => putRule(rules, 'override', 'x', { actions: 'notify' })).errcode).toBe('M_INVALID_PARAM');
    expect(refusal(() => putRule(rules, 'override', 'x', { actions: ['explode'] })).errcode).toBe('M_INVALID_PARAM');
    expect(refusal(() => putRule(rules, 'content', 'x', { actions: [] })).errcode).toBe('M_MISSING_PARAM');
    expect(refusal(() => putRule(rules, 'content', 'x', { actions: [], pattern: 5 })).errcode).toBe('M_INVALID_PARAM');
    expect(refusal(() => putRule(rules, 'override', 'x', { actions: [], conditions: [{ kind: 'room_member_count', is: 'many' }] })).errcode).toBe('M_INVALID_PARAM');
    expect(refusal(() => putRule(rules, 'override', 'x', { actions: [], conditions: [{ kind: 'event_match', key: 'type' }] })).errcode).toBe('M_INVALID_PARAM');
  });
  it('before/after: unknown (M_UNKNOWN) or a server default', () => {
    expect(refusal(() => putRule(rules, 'override', 'x', { actions: [] }, { before: 'nope' }))).toMatchObject({ status: 400, errcode: 'M_UNKNOWN' });
    expect(refusal(() => putRule(rules, 'override', 'x', { actions: [] }, { after: '.m.rule.master' })).errcode).toBe('M_INVALID_PARAM');
  });
  it('not found, and server defaults cannot be deleted', () => {
    expect(refusal(() => deleteRule(rules, 'override', 'nope'))).toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
    expect(refusal(() => deleteRule(rules, 'override', '.m.rule.master')).status).toBe(400);
    expect(refusal(() => setRuleEnabled(rules, 'override', '.m.rule.master', {})).errcode).toBe('M_MISSING_PARAM');
    expect(refusal(() => setRuleEnabled(rules, 'override', '.m.rule.master', { enabled: 'yes' })).errcode).toBe('M_INVALID_PARAM');
  });
  it('a rule after another user rule lands right after it; updating keeps its place and enabled flag', () => {
    let r = putRule(rules, 'override', 'a', { actions: [] });
    r = putRule(r, 'override', 'b', { actions: [] }, { after: 'a' });
    r = setRuleEnabled(r, 'override', 'a', { enabled: false });
    r = putRule(r, 'override', 'a', { actions: ['notify'] });
    expect(r.override.slice(0, 4).map((x) => x.rule_id)).toEqual(['.m.rule.master', 'a', 'b', '.m.rule.suppress_notices']);
    expect(r.override[1].enabled).toBe(false);
    expect(deleteRule(r, 'override', 'a').override.map((x) => x.rule_id)).not.toContain('a');
  });
});
