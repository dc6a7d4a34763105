/**
 * This server's side of federation in a spec that talks to synthetic remote
 * servers on loopback (startHttps): HTTPS trusting the test CA with
 * 127.0.0.1 allowed past the IP-range blocklist, the signing
 * HttpFederationClient, and a StoredKeyRing over the spec's store. The
 * caller closes `transport`.
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_IP_RANGE_BLOCKLIST } from '@atrium/config';
import type { SigningKey } from '@atrium/matrix';
import type { DocumentStore } from '@atrium/storage';
import { HttpFederationClient } from '../client';
import { IpRangeFilter } from '../ip-ranges';
import { StoredKeyRing } from '../key-ring';
import { httpsWellKnownFetcher, ServerNameResolver } from '../resolver';
import { HttpsTransport } from '../transport';

export interface LoopbackFederation {
  transport: HttpsTransport;
  client: HttpFederationClient;
  keyRing: StoredKeyRing;
}

export function loopbackFederation(options: { caCertPath: string; store: DocumentStore; serverName: string; signingKey: SigningKey }): LoopbackFederation {
  const { store, serverName, signingKey } = options;
  const transport = new HttpsTransport({ extraCaPems: [readFileSync(options.caCertPath, 'utf8')], ipFilter: new IpRangeFilter(DEFAULT_IP_RANGE_BLOCKLIST, ['127.0.0.1/32']) });
  const client = new HttpFederationClient({ serverName, signingKey, resolver: new ServerNameResolver({ fetchWellKnown: httpsWellKnownFetcher(transport) }), transport });
  return { transport, client, keyRing: new StoredKeyRing({ store, client, serverName, signingKey }) };
}
