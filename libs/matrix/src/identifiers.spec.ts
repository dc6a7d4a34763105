/** Identifier grammar (content/appendices.md "Identifier Grammar" and the room version event ID formats). */
import {
  domainOfId,
  isReservedNamespacedIdentifier,
  isValidEventId,
  isValidNamespacedIdentifier,
  isValidOpaqueId,
  isValidRoomAlias,
  isValidRoomId,
  isValidServerName,
  isValidUserId,
  parseEventId,
  parseRoomAlias,
  parseRoomId,
  parseServerName,
  parseUserId,
  userIdCompliance,
  validateRegistrationLocalpart,
} from './identifiers';
import { ROOM_VERSIONS } from './room-versions';

describe('server names', () => {
  it.each([
    ['matrix.org', { host: 'matrix.org', hostType: 'dns' }],
    ['matrix.org:8888', { host: 'matrix.org', hostType: 'dns', port: 8888 }],
    ['1.2.3.4', { host: '1.2.3.4', hostType: 'ipv4' }],
    ['1.2.3.4:1234', { host: '1.2.3.4', hostType: 'ipv4', port: 1234 }],
    ['[1234:5678::abcd]', { host: '[1234:5678::abcd]', hostType: 'ipv6' }],
    ['[1234:5678::abcd]:5678', { host: '[1234:5678::abcd]', hostType: 'ipv6', port: 5678 }],
    ['[::1]', { host: '[::1]', hostType: 'ipv6' }],
    ['[::ffff:1.2.3.4]:8448', { host: '[::ffff:1.2.3.4]', hostType: 'ipv6', port: 8448 }],
    ['localhost', { host: 'localhost', hostType: 'dns' }],
    ['MATRIX.org', { host: 'MATRIX.org', hostType: 'dns' }],
    ['a-b.c-d.example:65535', { host: 'a-b.c-d.example', hostType: 'dns', port: 65535 }],
    ['255.255.255.255', { host: '255.255.255.255', hostType: 'ipv4' }],
  ])('parses %s (the spec examples and more)', (name, expected) => {
    expect(parseServerName(name)).toEqual(expected);
  });

  it.each([
    '',
    'matrix.org:',
    'matrix.org:65536',
    'matrix.org:123456',
    'matrix.org:-1',
    'matrix.org:80a',
    'matrix_org',
    'matrix org',
    'mätrix.org',
    '1.2.3.256',
    '[1234:5678::abcd',
    '[1234:5678::abcd]:',
    '[1234:5678::abcd]x',
    '[not:an:ipv6:gggg]',
    '[1:2:3:4:5:6:7:8:9]',
    '[fe80::1%eth0]',
    '[]',
    '::1',
    '1234:5678::abcd',
    'a'.repeat(256),
  ])('refuses %j', (name) => {
    expect(isValidServerName(name)).toBe(false);
  });

  it('accepts a 255-character DNS name', () => {
    expect(isValidServerName('a'.repeat(255))).toBe(true);
  });
});

describe('user IDs', () => {
  it('parses into localpart and domain', () => {
    expect(parseUserId('@alice:example.org', 'strict')).toEqual({ localpart: 'alice', domain: 'example.org' });
    expect(parseUserId('@a.b_c=d-e/f+g9:[::1]:8448', 'strict')).toEqual({ localpart: 'a.b_c=d-e/f+g9', domain: '[::1]:8448' });
  });

  it('strict grammar: a-z 0-9 . _ = - / +, not empty', () => {
    for (const bad of ['@Alice:example.org', '@al ice:example.org', '@al*ce:example.org', '@:example.org', '@é:example.org', '@alice', 'alice:example.org', '#alice:example.org', '@alice:bad_server']) {
      expect([bad, isValidUserId(bad, 'strict')]).toEqual([bad, false]);
    }
  });

  it('historical grammar: any non-surrogate code points but : and NUL, even empty', () => {
    for (const good of ['@Alice:example.org', '@:example.org', '@al ice:example.org', '@日本:example.org', '@\u0001ctl:example.org', '@😀:example.org']) {
      expect([good, isValidUserId(good, 'historical')]).toEqual([good, true]);
    }
    expect(parseUserId('@Alice:example.org', 'historical')).toEqual({ localpart: 'Alice', domain: 'example.org' });
    for (const bad of ['@a\u0000b:example.org', '@\ud800:example.org', '@alice:bad server', '@alice']) {
      expect([bad, isValidUserId(bad, 'historical')]).toEqual([bad, false]);
    }
  });

  it('the first colon ends the localpart, so the rest must be a server name', () => {
    expect(parseUserId('@a:b:c', 'historical')).toBeUndefined();
    expect(parseUserId('@a:b:8448', 'historical')).toEqual({ localpart: 'a', domain: 'b:8448' });
  });

  it('limits the whole user ID to 255 bytes (bytes, not characters)', () => {
    const domain = 'example.org';
    const fits = `@${'a'.repeat(255 - 2 - domain.length)}:${domain}`;
    expect(Buffer.byteLength(fits)).toBe(255);
    expect(isValidUserId(fits, 'strict')).toBe(true);
    expect(isValidUserId(`@a${fits.slice(1)}`, 'strict')).toBe(false);
    // 82 three-byte characters are 246 bytes: 259 with `@`, `:` and the domain, 249 with `:x`.
    expect(isValidUserId(`@${'日'.repeat(82)}:${domain}`, 'historical')).toBe(false);
    expect(isValidUserId(`@${'日'.repeat(82)}:x`, 'historical')).toBe(true);
  });

  it('grades compliance', () => {
    expect(userIdCompliance('@alice:example.org')).toBe('strict');
    expect(userIdCompliance('@Alice!:example.org')).toBe('compliant');
    expect(userIdCompliance('@al ice:example.org')).toBe('non-compliant');
    expect(userIdCompliance('@:example.org')).toBe('non-compliant');
    expect(userIdCompliance('@é:example.org')).toBe('non-compliant');
    expect(userIdCompliance('alice')).toBe('invalid');
  });

  it('validates localparts for registration', () => {
    expect(validateRegistrationLocalpart('alice', 'example.org')).toEqual({ ok: true, userId: '@alice:example.org' });
    for (const bad of ['', 'Alice', 'al ice', 'al:ice', 'é', 'a'.repeat(250)]) {
      const result = validateRegistrationLocalpart(bad, 'example.org');
      expect([bad, result.ok, result.ok ? '' : result.errcode]).toEqual([bad, false, 'M_INVALID_USERNAME']);
    }
  });

  it('domainOfId takes what follows the first colon', () => {
    expect(domainOfId('@a:example.org:8448')).toBe('example.org:8448');
    expect(domainOfId('$abc')).toBeUndefined();
  });
});

describe('room IDs', () => {
  const hash = 'Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ';

  it('parses the domain form (v1–v11) and the hash form (v12)', () => {
    expect(parseRoomId('!abc:example.org')).toEqual({ kind: 'domain', localpart: 'abc', domain: 'example.org' });
    expect(parseRoomId(`!${hash}`)).toEqual({ kind: 'hash', hash });
    expect(parseRoomId(`!${hash}`, ROOM_VERSIONS['12'])).toEqual({ kind: 'hash', hash });
  });

  it('holds each version to its own form', () => {
    expect(isValidRoomId('!abc:example.org', ROOM_VERSIONS['12'])).toBe(false);
    expect(isValidRoomId(`!${hash}`, ROOM_VERSIONS['11'])).toBe(false);
    expect(isValidRoomId('!abc:example.org', ROOM_VERSIONS['1'])).toBe(true);
    // v12 room IDs use the URL-safe alphabet of v4+ event IDs.
    expect(isValidRoomId(`!${hash.replace('-', '+')}`, ROOM_VERSIONS['12'])).toBe(false);
  });

  it('refuses bad room IDs', () => {
    for (const bad of ['abc:example.org', '!abc', '!a\u0000b:example.org', '!\udc00:example.org', `!${'a'.repeat(250)}:example.org`, '!abc:bad server']) {
      expect([bad, isValidRoomId(bad)]).toEqual([bad, false]);
    }
  });
});

describe('room aliases', () => {
  it('parses any localpart but : and NUL, within 255 bytes', () => {
    expect(parseRoomAlias('#room:example.org')).toEqual({ localpart: 'room', domain: 'example.org' });
    expect(isValidRoomAlias('#Ünïcode room:example.org')).toBe(true);
    for (const bad of ['room:example.org', '#room', '#a\u0000:example.org', `#${'a'.repeat(250)}:example.org`, '@room:example.org']) {
      expect([bad, isValidRoomAlias(bad)]).toEqual([bad, false]);
    }
  });
});

describe('event IDs', () => {
  const std = 'acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk';
  const url = 'Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg';

  it('parses each form', () => {
    expect(parseEventId('$abc:example.org')).toEqual({ kind: 'domain', localpart: 'abc', domain: 'example.org' });
    expect(parseEventId(`$${std}`)).toEqual({ kind: 'hash', hash: std });
    expect(parseEventId(`$${url}`)).toEqual({ kind: 'hash', hash: url });
  });

  it('holds each room version to its form', () => {
    expect(isValidEventId('$abc:example.org', ROOM_VERSIONS['1'])).toBe(true);
    expect(isValidEventId(`$${std}`, ROOM_VERSIONS['2'])).toBe(false);
    expect(isValidEventId(`$${std}`, ROOM_VERSIONS['3'])).toBe(true);
    expect(isValidEventId(`$${url}`, ROOM_VERSIONS['3'])).toBe(false);
    expect(isValidEventId(`$${url}`, ROOM_VERSIONS['4'])).toBe(true);
    expect(isValidEventId(`$${std}`, ROOM_VERSIONS['12'])).toBe(false);
    expect(isValidEventId('$abc:example.org', ROOM_VERSIONS['4'])).toBe(false);
  });

  it('refuses bad event IDs', () => {
    for (const bad of ['abc:example.org', '$', '$:example.org', `$${std}x`, `$${std.slice(1)}`, `$${'a'.repeat(250)}:example.org`]) {
      expect([bad, isValidEventId(bad)]).toEqual([bad, false]);
    }
  });
});

describe('opaque and namespaced identifiers', () => {
  it('opaque IDs: [0-9A-Za-z-._~], 1–255 characters', () => {
    expect(isValidOpaqueId('AbC-1.2_3~')).toBe(true);
    expect(isValidOpaqueId('')).toBe(false);
    expect(isValidOpaqueId('a/b')).toBe(false);
    expect(isValidOpaqueId('a b')).toBe(false);
    expect(isValidOpaqueId('a'.repeat(255))).toBe(true);
    expect(isValidOpaqueId('a'.repeat(256))).toBe(false);
    expect(isValidOpaqueId('a'.repeat(33), 32)).toBe(false);
  });

  it('namespaced identifiers: start with a-z, then a-z 0-9 - _ .', () => {
    expect(isValidNamespacedIdentifier('m.login.password')).toBe(true);
    expect(isValidNamespacedIdentifier('com.example_x-y.z9')).toBe(true);
    for (const bad of ['', 'M.login', '9abc', '.abc', 'com.Example', 'a b', 'a'.repeat(256)]) {
      expect([bad, isValidNamespacedIdentifier(bad)]).toEqual([bad, false]);
    }
    expect(isReservedNamespacedIdentifier('m.room')).toBe(true);
    expect(isReservedNamespacedIdentifier('com.m.room')).toBe(false);
  });
});
