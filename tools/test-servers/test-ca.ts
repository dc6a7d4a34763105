// A throwaway certificate authority for tests that speak federation over TLS on
// loopback (server-server-api requires TLS; the suite's servers trust this CA
// through `federation.trusted_ca_paths` or Synapse's `federation_custom_ca_list`).
// Uses the openssl CLI (Debian's openssl package): node:crypto can sign, but has
// no API to build X.509 certificates.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';

export interface TestCa {
  dir: string;
  /** PEM file of the CA certificate (what peers trust). */
  certPath: string;
  keyPath: string;
  /** Issues a certificate for the given DNS names and IP addresses; returns PEM file paths. */
  issue(names: readonly string[]): { certPath: string; keyPath: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

export function createTestCa(dir: string = mkdtempSync(join(tmpdir(), 'atrium-test-ca-'))): TestCa {
  const certPath = join(dir, 'ca.crt');
  const keyPath = join(dir, 'ca.key');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=Atrium test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  let serial = 0;
  return {
    dir,
    certPath,
    keyPath,
    issue(names) {
      serial += 1;
      const base = join(dir, `leaf-${serial}`);
      // Strip the port of a server name (`127.0.0.1:8448`, `[::1]:8448`): certificates name hosts.
      const hosts = [...new Set(names.map((n) => n.replace(/^\[(.*)\](:\d+)?$/, '$1').replace(/^([^:\]]+):\d+$/, '$1')))];
      const san = hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
      writeFileSync(`${base}.ext`, `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n`);
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${hosts[0]}`], dir);
      openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', certPath, '-CAkey', keyPath, '-set_serial', String(1000 + serial), '-days', '2', '-out', `${base}.crt`, '-extfile', `${base}.ext`], dir);
      return { certPath: `${base}.crt`, keyPath: `${base}.key` };
    },
  };
}
