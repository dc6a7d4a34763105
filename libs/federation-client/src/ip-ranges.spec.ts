import { DEFAULT_IP_RANGE_BLOCKLIST } from '@atrium/config';
import { IpRangeFilter } from './ip-ranges';

describe('IpRangeFilter with the default blocklist', () => {
  const filter = new IpRangeFilter(DEFAULT_IP_RANGE_BLOCKLIST, []);

  it.each(['127.0.0.1', '127.255.0.9', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '100.127.255.254', '169.254.169.254', '0.0.0.0', '::1', '::', 'fe80::1', 'fd12:3456::1', 'fc00::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1'])(
    'blocks %s',
    (address) => expect(filter.isBlocked(address)).toBe(true),
  );

  it.each(['8.8.8.8', '172.32.0.1', '100.128.0.1', '192.169.0.1', '2001:4860:4860::8888', '::ffff:8.8.8.8'])('allows %s', (address) => expect(filter.isBlocked(address)).toBe(false));

  it('refuses what is not an IP address', () => {
    expect(filter.isBlocked('example.org')).toBe(true);
  });
});

describe('IpRangeFilter with an allowlist', () => {
  const filter = new IpRangeFilter(DEFAULT_IP_RANGE_BLOCKLIST, ['127.0.0.1/32', '::1/128']);

  it('lets the listed addresses through and keeps the rest of the range blocked', () => {
    expect(filter.isBlocked('127.0.0.1')).toBe(false);
    expect(filter.isBlocked('::1')).toBe(false);
    expect(filter.isBlocked('::ffff:127.0.0.1')).toBe(false);
    expect(filter.isBlocked('127.0.0.2')).toBe(true);
    expect(filter.isBlocked('10.0.0.1')).toBe(true);
  });
});
