/** `rotate-key` (cli.ts): the new key signs, the old one is published as an old verify key. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@atrium/config';
import { buildServerKeys, parseSigningKeyFile, verifyServerKeys } from '@atrium/matrix';
import { generateConfig, rotateKey } from './cli';

describe('rotate-key', () => {
  it('replaces the signing key and lists the old one in old_signing_keys with expired_ts, keeping the config\'s comments and earlier entries', () => {
    const dir = mkdtempSync(join(tmpdir(), 'atrium-rotate-'));
    const configPath = join(dir, 'atrium.yaml');
    generateConfig(['--server-name', 'rotate.test', '--config', configPath, '--data-dir', join(dir, 'data')]);
    writeFileSync(configPath, `# operator's note\n${readFileSync(configPath, 'utf8')}`);
    const before = loadConfig(configPath, {});
    const [first] = parseSigningKeyFile(readFileSync(before.signing_key_path, 'utf8'));

    const one = rotateKey(['--config', configPath], 1_000);
    expect(one.oldKeyId).toBe(first.keyId);
    const [second] = parseSigningKeyFile(readFileSync(before.signing_key_path, 'utf8'));
    expect(second.keyId).toBe(one.newKeyId);
    expect(second.keyId).not.toBe(first.keyId);

    const two = rotateKey(['--config', configPath], 2_000);
    expect(two.oldKeyId).toBe(second.keyId);
    const after = loadConfig(configPath, {});
    expect(after.old_signing_keys).toEqual({
      [first.keyId]: { key: first.publicKeyBase64, expired_ts: 1_000 },
      [second.keyId]: { key: second.publicKeyBase64, expired_ts: 2_000 },
    });
    expect(readFileSync(configPath, 'utf8')).toContain("# operator's note");
    expect(readFileSync(before.signing_key_path).length).toBeGreaterThan(0);

    // What /_matrix/key/v2/server then serves is valid and lists both old keys.
    const [third] = parseSigningKeyFile(readFileSync(after.signing_key_path, 'utf8'));
    const keys = buildServerKeys({ serverName: 'rotate.test', signingKeys: [third], oldVerifyKeys: after.old_signing_keys, validUntilTs: 10_000 });
    const verified = verifyServerKeys(keys, 'rotate.test');
    expect(verified.ok && Object.keys(verified.keys.oldVerifyKeys).sort()).toEqual([first.keyId, second.keyId].sort());
    expect(verified.ok && Object.keys(verified.keys.verifyKeys)).toEqual([third.keyId]);
  });

  it('refuses to run without a config file', () => {
    expect(() => rotateKey(['--config', join(tmpdir(), 'does-not-exist', 'atrium.yaml')])).toThrow(/does not exist/);
  });
});
