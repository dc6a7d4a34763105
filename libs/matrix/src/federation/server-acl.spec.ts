import { aclGlobToRegExp, serverAclAllows } from './server-acl';

describe('server ACLs (m.room.server_acl)', () => {
  it('allows everyone when the room has no ACL event', () => {
    expect(serverAclAllows(undefined, 'evil.com')).toBe(true);
  });

  it('denies everyone without an allow list ("defaults to an empty list")', () => {
    expect(serverAclAllows({}, 'good.org')).toBe(false);
    expect(serverAclAllows({ deny: [] }, 'good.org')).toBe(false);
  });

  it('checks deny before allow, case-insensitively, ignoring the port', () => {
    const acl = { allow: ['*'], deny: ['evil.com', '*.evil.com'] };
    expect(serverAclAllows(acl, 'evil.com')).toBe(false);
    expect(serverAclAllows(acl, 'EVIL.com:8448')).toBe(false);
    expect(serverAclAllows(acl, 'evil.com:1234')).toBe(false);
    expect(serverAclAllows(acl, 'sub.evil.com')).toBe(false);
    expect(serverAclAllows(acl, 'notevil.com')).toBe(true);
    expect(serverAclAllows(acl, 'good.org:8448')).toBe(true);
  });

  it('matches ? as exactly one character and treats regex characters literally', () => {
    const acl = { allow: ['server?.org', 'a+b.org'] };
    expect(serverAclAllows(acl, 'server1.org')).toBe(true);
    expect(serverAclAllows(acl, 'server12.org')).toBe(false);
    expect(serverAclAllows(acl, 'server.org')).toBe(false);
    expect(aclGlobToRegExp('a+b.org').test('A+B.org')).toBe(true);
    expect(serverAclAllows(acl, 'aab.org')).toBe(false);
    expect(aclGlobToRegExp('x.y').test('xzy')).toBe(false);
  });

  it('denies IP literals only when allow_ip_literals is false', () => {
    expect(serverAclAllows({ allow: ['*'], allow_ip_literals: false }, '1.2.3.4')).toBe(false);
    expect(serverAclAllows({ allow: ['*'], allow_ip_literals: false }, '[::1]:8448')).toBe(false);
    expect(serverAclAllows({ allow: ['*'], allow_ip_literals: false }, 'example.org')).toBe(true);
    // "Defaults to true if missing or otherwise not a boolean."
    expect(serverAclAllows({ allow: ['*'], allow_ip_literals: 'no' }, '1.2.3.4')).toBe(true);
    expect(serverAclAllows({ allow: ['*'] }, '127.0.0.1:8448')).toBe(true);
    expect(serverAclAllows({ allow: ['127.0.0.1'] }, '127.0.0.1:8448')).toBe(true);
  });

  it('ignores entries that are not strings and lists that are not arrays', () => {
    expect(serverAclAllows({ allow: [1, 'ok.org'], deny: 'ok.org' }, 'ok.org')).toBe(true);
    expect(serverAclAllows({ allow: '*' }, 'ok.org')).toBe(false);
  });

  it('denies a name that is not a server name', () => {
    expect(serverAclAllows({ allow: ['*'] }, 'bad name')).toBe(false);
  });
});
