import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { buildConfig } from './load';
import { defaultConfig } from './schema';

/** config/atrium.sample.yaml must stay loadable and document every key the schema has. */
describe('config/atrium.sample.yaml', () => {
  const text = readFileSync(join(__dirname, '..', '..', '..', 'config', 'atrium.sample.yaml'), 'utf8');

  it('loads', () => {
    const config = buildConfig(text, {});
    expect(config.server_name).toBe('example.org');
    expect(config.registration.mode).toBe('closed');
  });

  it('mentions every key of the schema', () => {
    const sample = parse(text) as Record<string, unknown>;
    const missing: string[] = [];
    const walk = (defaults: Record<string, unknown>, present: Record<string, unknown> | undefined, path: string): void => {
      for (const [key, value] of Object.entries(defaults)) {
        const where = path ? `${path}.${key}` : key;
        if (!present || !(key in present)) {
          missing.push(where);
          continue;
        }
        if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
          walk(value as Record<string, unknown>, present[key] as Record<string, unknown>, where);
        }
      }
    };
    walk(defaultConfig('example.org') as unknown as Record<string, unknown>, sample, '');
    expect(missing).toEqual([]);
    // Optional keys are documented as comments.
    for (const optional of ['tls_certificate_path', 'tls_private_key_path', 'shared_secret', 'otlp_endpoint', 'server:']) {
      expect(text).toContain(optional);
    }
  });
});
