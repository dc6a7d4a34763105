import { buildConfig, ConfigError } from './load';

describe('buildConfig', () => {
  it('fills every default from just a server name', () => {
    const config = buildConfig('server_name: example.org\n');
    expect(config.server_name).toBe('example.org');
    expect(config.storage.url).toBe('sqlite:./data/atrium.db');
    expect(config.bus.url).toBe('inprocess:');
    expect(config.listeners.client.port).toBe(8008);
    expect(config.listeners.federation.port).toBe(8448);
    expect(config.registration.mode).toBe('closed');
    expect(config.public_baseurl).toBe('http://example.org:8008/');
  });

  it('derives paths from data_dir', () => {
    const config = buildConfig('server_name: a.test\ndata_dir: /var/lib/atrium\n');
    expect(config.signing_key_path).toBe('/var/lib/atrium/signing.key');
    expect(config.storage.url).toBe('sqlite:/var/lib/atrium/atrium.db');
  });

  it('applies environment overrides with their types', () => {
    const config = buildConfig('server_name: a.test\n', {
      ATRIUM_STORAGE__URL: 'mongodb://127.0.0.1:27017/atrium',
      ATRIUM_LISTENERS__CLIENT__PORT: '9000',
      ATRIUM_RATE_LIMITS__ENABLED: 'false',
      ATRIUM_REGISTRATION__TOKENS: '["t1","t2"]',
      ATRIUM_REGISTRATION__SHARED_SECRET: 's3cret',
    });
    expect(config.storage.url).toBe('mongodb://127.0.0.1:27017/atrium');
    expect(config.listeners.client.port).toBe(9000);
    expect(config.rate_limits.enabled).toBe(false);
    expect(config.registration.tokens).toEqual(['t1', 't2']);
    expect(config.registration.shared_secret).toBe('s3cret');
  });

  it('ignores ATRIUM_ variables that are not config keys, but not misspelt keys of a section', () => {
    expect(buildConfig('server_name: a.test\n', { ATRIUM_CONFIG: 'x.yaml', ATRIUM_FERRETDB_BIN: '/bin/x' }).server_name).toBe('a.test');
    expect(() => buildConfig('server_name: a.test\n', { ATRIUM_STORAGE__URI: 'x' })).toThrow(/storage.uri/);
  });

  it('takes the server name from the environment', () => {
    expect(buildConfig('', { ATRIUM_SERVER_NAME: 'env.test' }).server_name).toBe('env.test');
  });

  it.each([
    ['server_name: x.test\nstorge:\n  url: x\n', /unknown config key "storge"/],
    ['server_name: x.test\nlisteners:\n  client:\n    port: "80"\n', /listeners.client.port/],
    ['server_name: x.test\nregistration:\n  mode: sometimes\n', /registration.mode/],
    ['- a\n- b\n', /mapping/],
    ['data_dir: /x\n', /server_name/],
  ])('rejects %j', (yaml, message) => {
    expect(() => buildConfig(yaml, {})).toThrow(ConfigError);
    expect(() => buildConfig(yaml, {})).toThrow(message);
  });

  it('rejects a non-numeric port from the environment', () => {
    expect(() => buildConfig('server_name: x.test\n', { ATRIUM_LISTENERS__CLIENT__PORT: 'eighty' })).toThrow(/must be a number/);
  });

  describe('federation', () => {
    it('defaults to no extra CAs, no notaries, and a blocklist of loopback, private, link-local, CGNAT, ULA and unspecified ranges', () => {
      const { federation } = buildConfig('server_name: a.test\n');
      expect(federation.trusted_ca_paths).toEqual([]);
      expect(federation.ip_range_allowlist).toEqual([]);
      expect(federation.trusted_key_servers).toEqual([]);
      for (const range of ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '0.0.0.0/8', '::1/128', '::/128', 'fe80::/10', 'fc00::/7']) {
        expect(federation.ip_range_blocklist).toContain(range);
      }
    });

    it('reads the section from YAML and the environment', () => {
      const config = buildConfig(
        [
          'server_name: a.test',
          'federation:',
          '  trusted_ca_paths: [/etc/ca.pem]',
          '  trusted_key_servers:',
          '    - server_name: notary.test',
          '      verify_keys: { "ed25519:a": "Q1yH/4Li4u+g2lLqOHMmMeIG3ejLb55vSWQa4TKMO4E" }',
          '',
        ].join('\n'),
        { ATRIUM_FEDERATION__IP_RANGE_ALLOWLIST: '["127.0.0.1/32","::1/128"]' },
      );
      expect(config.federation.trusted_ca_paths).toEqual(['/etc/ca.pem']);
      expect(config.federation.ip_range_allowlist).toEqual(['127.0.0.1/32', '::1/128']);
      expect(config.federation.trusted_key_servers).toEqual([{ server_name: 'notary.test', verify_keys: { 'ed25519:a': 'Q1yH/4Li4u+g2lLqOHMmMeIG3ejLb55vSWQa4TKMO4E' } }]);
      expect(config.federation.ip_range_blocklist).toContain('10.0.0.0/8');
    });

    it.each([
      ['federation:\n  ip_range_blocklist: [10.0.0.0]\n', /ip_range_blocklist.*10.0.0.0/],
      ['federation:\n  ip_range_allowlist: [10.0.0.0/33]\n', /ip_range_allowlist/],
      ['federation:\n  ip_range_allowlist: [example.org/8]\n', /ip_range_allowlist/],
      ['federation:\n  trusted_key_servers: [{ verify_keys: {} }]\n', /server_name/],
      ['federation:\n  trusted_key_servers: [{ server_name: n.test, keys: {} }]\n', /trusted_key_servers\[0\].keys/],
      ['federation:\n  trusted_key_servers: [{ server_name: n.test, verify_keys: { "ed25519:a": 1 } }]\n', /verify_keys/],
      ['federation:\n  trusted_ca_paths: /etc/ca.pem\n', /trusted_ca_paths/],
    ])('refuses %j', (yaml, message) => {
      expect(() => buildConfig(`server_name: a.test\n${yaml}`)).toThrow(message);
    });
  });

  it.each([
    ['old_signing_keys:\n  "rsa:x": { key: "Q1yH/4Li4u+g2lLqOHMmMeIG3ejLb55vSWQa4TKMO4E", expired_ts: 1 }\n', /not an ed25519 key ID/],
    ['old_signing_keys:\n  "ed25519:a": { key: "short", expired_ts: 1 }\n', /public key/],
    ['old_signing_keys:\n  "ed25519:a": { key: "Q1yH/4Li4u+g2lLqOHMmMeIG3ejLb55vSWQa4TKMO4E" }\n', /expired_ts/],
  ])('refuses a bad old_signing_keys entry %j', (yaml, message) => {
    expect(() => buildConfig(`server_name: a.test\n${yaml}`)).toThrow(message);
  });

  it('accepts old_signing_keys as rotate-key writes them', () => {
    const config = buildConfig('server_name: a.test\nold_signing_keys:\n  "ed25519:a_Old1": { key: "Q1yH/4Li4u+g2lLqOHMmMeIG3ejLb55vSWQa4TKMO4E", expired_ts: 1700000000000 }\n');
    expect(config.old_signing_keys).toEqual({ 'ed25519:a_Old1': { key: 'Q1yH/4Li4u+g2lLqOHMmMeIG3ejLb55vSWQa4TKMO4E', expired_ts: 1700000000000 } });
  });
});
