/**
 * Server name resolution. Spec: server-server-api "Resolving server names",
 * steps 1–6 in the spec's order, and the `/.well-known/matrix/server`
 * caching rules of step 3.
 */
import { promises as dns, type SrvRecord } from 'node:dns';
import { parseServerName } from '@atrium/matrix';
import { FederationUnreachableError, type ResolvedServer, type ServerResolver } from './api';
import { TransportError, type HttpsTarget, type HttpsTransport } from './transport';

/** Looks up SRV records; resolves to [] when there are none. */
export type SrvLookup = (name: string) => Promise<SrvRecord[]>;

/** The outcome of a /.well-known/matrix/server fetch. */
export type WellKnownResult =
  | { ok: true; server: string; cacheMs: number }
  /** `transient`: the host could not be reached or answered 5xx, as opposed to a definite answer (404, bad JSON) that there is no delegation. */
  | { ok: false; error: string; cacheMs: number; transient?: boolean };

export type WellKnownFetcher = (hostname: string) => Promise<WellKnownResult>;

const DEFAULT_PORT = 8448;
/** Step 3: "The recommended sensible default is 24 hours." */
export const WELL_KNOWN_DEFAULT_CACHE_MS = 24 * 3600_000;
/** Step 3: "48 hours is recommended" as the maximum cache time. */
export const WELL_KNOWN_MAX_CACHE_MS = 48 * 3600_000;
/** Step 3: "Errors are recommended to be cached for up to an hour." */
export const WELL_KNOWN_ERROR_CACHE_MS = 3600_000;
const WELL_KNOWN_TIMEOUT_MS = 10_000;
const WELL_KNOWN_MAX_BYTES = 64 * 1024;
const MAX_REDIRECTS = 5;
/**
 * A delegation whose refresh failed transiently (unreachable, 5xx) is kept
 * this long before asking again, if it expired less than 48 h ago: one blip
 * at refresh time should not send a delegated server's traffic to the wrong
 * host for the hour errors are cached.
 */
export const WELL_KNOWN_STALE_RETRY_MS = 10 * 60_000;
/** How long SRV answers (and their absence) are reused. */
export const SRV_CACHE_MS = 10 * 60_000;

/**
 * SRV lookups through node:dns (the system's resolvers, or `servers` given as
 * `host:port`); "no such record" answers are an empty list.
 */
export function dnsSrvLookup(servers?: readonly string[]): SrvLookup {
  const resolver = new dns.Resolver({ timeout: 5_000, tries: 2 });
  if (servers) resolver.setServers([...servers]);
  return async (name) => {
    try {
      return await resolver.resolveSrv(name);
    } catch {
      // ENOTFOUND/ENODATA mean no record; a SERVFAIL or timeout leaves us no
      // better off, and the spec's next step applies either way.
      return [];
    }
  };
}

/** The default SRV lookup: the system's resolvers. */
export const systemSrvLookup: SrvLookup = dnsSrvLookup();

/**
 * How long to cache a well-known answer: Cache-Control `max-age` capped at
 * 48 h, `no-store`/`no-cache` not at all, otherwise 24 h.
 */
export function wellKnownCacheMs(cacheControl: string | undefined): number {
  if (!cacheControl) return WELL_KNOWN_DEFAULT_CACHE_MS;
  const directives = cacheControl.toLowerCase().split(',').map((d) => d.trim());
  if (directives.includes('no-store') || directives.includes('no-cache')) return 0;
  for (const directive of directives) {
    const m = /^max-age\s*=\s*"?(\d+)"?$/.exec(directive);
    if (m) return Math.min(Number(m[1]) * 1000, WELL_KNOWN_MAX_CACHE_MS);
  }
  return WELL_KNOWN_DEFAULT_CACHE_MS;
}

/** Orders SRV records by priority, then by weight at random within a priority (RFC 2782). */
export function orderSrv(records: readonly SrvRecord[], random: () => number = Math.random): SrvRecord[] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const r of records) {
    // A target of "." means "decidedly not available at this domain" (RFC 2782).
    if (r.name === '.' || r.name === '') continue;
    const list = byPriority.get(r.priority) ?? [];
    list.push(r);
    byPriority.set(r.priority, list);
  }
  const ordered: SrvRecord[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const pool = [...byPriority.get(priority)!];
    while (pool.length > 0) {
      const total = pool.reduce((sum, r) => sum + r.weight, 0);
      let pick = 0;
      if (total > 0) {
        let roll = random() * total;
        pick = pool.findIndex((r) => (roll -= r.weight) < 0);
        if (pick < 0) pick = pool.length - 1;
      }
      ordered.push(pool.splice(pick, 1)[0]);
    }
  }
  return ordered;
}

function stripBrackets(host: string): string {
  return host.startsWith('[') ? host.slice(1, -1) : host;
}

/** Fetches /.well-known/matrix/server over the shared transport (TLS, blocklist), following redirects. */
export function httpsWellKnownFetcher(transport: HttpsTransport, port = 443): WellKnownFetcher {
  return async (hostname) => {
    let url = new URL(`https://${hostname}${port === 443 ? '' : `:${port}`}/.well-known/matrix/server`);
    const seen = new Set<string>();
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      if (seen.has(url.href)) return { ok: false, error: 'redirect loop', cacheMs: WELL_KNOWN_ERROR_CACHE_MS };
      seen.add(url.href);
      if (url.protocol !== 'https:') return { ok: false, error: `redirect to ${url.protocol}`, cacheMs: WELL_KNOWN_ERROR_CACHE_MS };
      const host = stripBrackets(url.hostname);
      const target: HttpsTarget = { host, port: url.port ? Number(url.port) : 443, hostHeader: url.host, tlsServerName: host };
      let response;
      try {
        response = await transport.exchange(target, {
          method: 'GET',
          path: `${url.pathname}${url.search}`,
          headers: { Accept: 'application/json' },
          timeoutMs: WELL_KNOWN_TIMEOUT_MS,
          maxBytes: WELL_KNOWN_MAX_BYTES,
        });
      } catch (err) {
        return { ok: false, error: err instanceof TransportError ? `${err.reason}: ${err.message}` : String(err), cacheMs: WELL_KNOWN_ERROR_CACHE_MS, transient: true };
      }
      // "30x redirects should be followed, however redirection loops should be avoided."
      if (response.status >= 300 && response.status < 400 && typeof response.headers.location === 'string') {
        url = new URL(response.headers.location, url);
        continue;
      }
      const cacheControl = response.headers['cache-control'];
      if (response.status !== 200) return { ok: false, error: `status ${response.status}`, cacheMs: WELL_KNOWN_ERROR_CACHE_MS, transient: response.status >= 500 };
      let body: unknown;
      try {
        body = JSON.parse(response.body.toString('utf8'));
      } catch {
        return { ok: false, error: 'not JSON', cacheMs: WELL_KNOWN_ERROR_CACHE_MS };
      }
      const server = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>)['m.server'] : undefined;
      if (typeof server !== 'string' || !parseServerName(server)) {
        return { ok: false, error: 'm.server missing or not a server name', cacheMs: WELL_KNOWN_ERROR_CACHE_MS };
      }
      return { ok: true, server, cacheMs: wellKnownCacheMs(Array.isArray(cacheControl) ? cacheControl.join(',') : cacheControl) };
    }
    return { ok: false, error: 'too many redirects', cacheMs: WELL_KNOWN_ERROR_CACHE_MS };
  };
}

export interface ServerNameResolverOptions {
  fetchWellKnown: WellKnownFetcher;
  lookupSrv?: SrvLookup;
  now?: () => number;
}

export class ServerNameResolver implements ServerResolver {
  private readonly wellKnownCache = new Map<string, { result: WellKnownResult; expiresAt: number }>();
  private readonly srvCache = new Map<string, { servers: ResolvedServer[]; expiresAt: number }>();
  /** The last valid delegation per host and when its cache time ended. */
  private readonly lastGoodWellKnown = new Map<string, { result: WellKnownResult & { ok: true }; expiredAt: number }>();
  /** Concurrent resolutions of one name share one well-known fetch. */
  private readonly wellKnownInFlight = new Map<string, Promise<WellKnownResult>>();
  private readonly lookupSrv: SrvLookup;
  private readonly now: () => number;

  constructor(private readonly options: ServerNameResolverOptions) {
    this.lookupSrv = options.lookupSrv ?? systemSrvLookup;
    this.now = options.now ?? Date.now;
  }

  async resolve(serverName: string): Promise<ResolvedServer[]> {
    const parsed = parseServerName(serverName);
    if (!parsed) throw new FederationUnreachableError(serverName, 'resolve', `${JSON.stringify(serverName)} is not a server name`);
    const host = stripBrackets(parsed.host);
    // Step 1: an IP literal, with its port or 8448; Host is the server name.
    if (parsed.hostType !== 'dns') {
      return [{ host, port: parsed.port ?? DEFAULT_PORT, hostHeader: serverName, tlsServerName: host }];
    }
    // Step 2: a hostname with an explicit port: A/AAAA (at connect time).
    if (parsed.port !== undefined) {
      return [{ host, port: parsed.port, hostHeader: serverName, tlsServerName: host }];
    }
    // Step 3: /.well-known/matrix/server.
    const wellKnown = await this.wellKnown(host);
    if (wellKnown.ok) {
      const delegated = parseServerName(wellKnown.server)!;
      const dHost = stripBrackets(delegated.host);
      // 3.1: an IP literal; Host is the IP address with the port if one was given.
      if (delegated.hostType !== 'dns') {
        return [{ host: dHost, port: delegated.port ?? DEFAULT_PORT, hostHeader: wellKnown.server, tlsServerName: dHost }];
      }
      // 3.2: a hostname with a port; Host is `<delegated_hostname>:<delegated_port>`.
      if (delegated.port !== undefined) {
        return [{ host: dHost, port: delegated.port, hostHeader: wellKnown.server, tlsServerName: dHost }];
      }
      // 3.3, 3.4: SRV of the delegated name; 3.5: the delegated name on 8448.
      return this.srvOr(dHost);
    }
    // Steps 4, 5: SRV of the server name; step 6: the name on 8448.
    return this.srvOr(host);
  }

  /**
   * `_matrix-fed._tcp.<name>`, then the deprecated `_matrix._tcp.<name>`,
   * then `<name>:8448`. With SRV the certificate and Host stay `<name>`
   * (the note after step 6: DNS is insecure, so the target must prove by TLS
   * that it serves `<name>`).
   */
  private async srvOr(name: string): Promise<ResolvedServer[]> {
    // node:dns gives no TTLs for SRV: answers are kept a fixed while, so a busy
    // destination does not cost two DNS queries per request.
    const cached = this.srvCache.get(name);
    if (cached && cached.expiresAt > this.now()) return cached.servers;
    let servers: ResolvedServer[] | undefined;
    for (const service of ['_matrix-fed._tcp', '_matrix._tcp']) {
      const records = orderSrv(await this.lookupSrv(`${service}.${name}`));
      if (records.length > 0) {
        servers = records.map((r) => ({ host: r.name.replace(/\.$/, ''), port: r.port, hostHeader: name, tlsServerName: name }));
        break;
      }
    }
    servers ??= [{ host: name, port: DEFAULT_PORT, hostHeader: name, tlsServerName: name }];
    if (this.srvCache.size >= 10_000) this.srvCache.clear();
    this.srvCache.set(name, { servers, expiresAt: this.now() + SRV_CACHE_MS });
    return servers;
  }

  private async wellKnown(hostname: string): Promise<WellKnownResult> {
    const cached = this.wellKnownCache.get(hostname);
    if (cached && cached.expiresAt > this.now()) return cached.result;
    let pending = this.wellKnownInFlight.get(hostname);
    if (!pending) {
      pending = this.options.fetchWellKnown(hostname).then(
        (fetched) => {
          let result = fetched;
          let cacheMs = fetched.cacheMs;
          const lastGood = this.lastGoodWellKnown.get(hostname);
          if (fetched.ok) {
            this.lastGoodWellKnown.set(hostname, { result: fetched, expiredAt: this.now() + fetched.cacheMs });
          } else if (fetched.transient && lastGood && this.now() - lastGood.expiredAt < WELL_KNOWN_MAX_CACHE_MS) {
            result = lastGood.result;
            cacheMs = WELL_KNOWN_STALE_RETRY_MS;
          } else {
            this.lastGoodWellKnown.delete(hostname);
          }
          if (this.lastGoodWellKnown.size > 10_000) this.lastGoodWellKnown.clear();
          if (cacheMs > 0) this.wellKnownCache.set(hostname, { result, expiresAt: this.now() + cacheMs });
          else this.wellKnownCache.delete(hostname);
          return result;
        },
        (err: unknown): WellKnownResult => {
          const result: WellKnownResult = { ok: false, error: String(err), cacheMs: WELL_KNOWN_ERROR_CACHE_MS };
          this.wellKnownCache.set(hostname, { result, expiresAt: this.now() + result.cacheMs });
          return result;
        },
      );
      pending.finally(() => this.wellKnownInFlight.delete(hostname)).catch(() => undefined);
      this.wellKnownInFlight.set(hostname, pending);
    }
    return pending;
  }
}
