/**
 * The contracts of the federation transport, shared by every service that
 * talks to other servers (docs/federation-design.md). Implementations live
 * beside this file; callers depend on these interfaces only.
 *
 * Spec: server-server-api "Server discovery", "Authentication" (request
 * authentication, X-Matrix), "Retrieving server keys".
 */
import type { JsonObject, KnownVerifyKey } from '@atrium/matrix';

/** One request to another homeserver's federation or key API. */
export interface FederationRequest {
  /** The server name of the destination, exactly as in IDs (`example.org`, `127.0.0.1:8448`, `[::1]:8448`). */
  destination: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path starting with `/_matrix/`, every variable segment already percent-encoded. */
  path: string;
  /** Query parameters; an array repeats the parameter (`v=a&v=b`). */
  query?: Record<string, string | number | boolean | readonly (string | number)[]>;
  /** JSON body (PUT/POST). */
  body?: JsonObject;
  /** Whether to send the X-Matrix Authorization header (default true; the key APIs are unsigned). */
  signed?: boolean;
  /** Overall deadline for the attempt, ms (default 30 s). */
  timeoutMs?: number;
  /** Largest answer body accepted, bytes (default 64 MiB); a larger one fails as FederationUnreachableError('protocol'). */
  maxResponseBytes?: number;
}

/** The destination answered with a non-2xx status (its Matrix error when it sent one). */
export class FederationHttpError extends Error {
  constructor(
    readonly destination: string,
    readonly status: number,
    readonly errcode: string | undefined,
    readonly body: unknown,
    message: string,
  ) {
    super(message);
    this.name = 'FederationHttpError';
  }
}

/**
 * The destination could not be reached: resolution failed, the address is in
 * a blocked IP range, the connection or TLS failed (wrong certificate name,
 * untrusted CA), or the deadline passed. Retrying later may help.
 */
export class FederationUnreachableError extends Error {
  constructor(
    readonly destination: string,
    readonly reason: 'resolve' | 'blocked' | 'connect' | 'tls' | 'timeout' | 'protocol',
    message: string,
  ) {
    super(message);
    this.name = 'FederationUnreachableError';
  }
}

/** Signed requests to other servers. */
export interface FederationClient {
  /** The answer's JSON body on 2xx; otherwise throws FederationHttpError or FederationUnreachableError. */
  request<T = JsonObject>(request: FederationRequest): Promise<T>;
}

/** Where to connect for a server name (server-server-api "Resolving server names"). */
export interface ResolvedServer {
  /** Host to connect to: an IP literal or a DNS name (without brackets). */
  host: string;
  port: number;
  /** The Host header to send (the server name, or the delegated name, per the spec's step). */
  hostHeader: string;
  /** The name the TLS certificate must be valid for. */
  tlsServerName: string;
}

export interface ServerResolver {
  /** Candidates in the order to try; throws FederationUnreachableError('resolve') when there is none. */
  resolve(serverName: string): Promise<ResolvedServer[]>;
}

/** A verify key of a remote server as this server learnt it. */
export interface RemoteVerifyKey extends KnownVerifyKey {
  serverName: string;
  keyId: string;
}

/**
 * Other servers' signing keys: fetched directly (`/_matrix/key/v2/server`)
 * or through the configured notaries (`/_matrix/key/v2/query`), checked
 * (self-signature, and the notary's signature), cached in storage until
 * `valid_until_ts`. Spec: server-server-api "Retrieving server keys".
 */
export interface KeyRing {
  /**
   * Keys able to check signatures made at `atTs` (default now): a key whose
   * `valid_until_ts` is at least `atTs` (room versions 5+: the spec's rule
   * applies per room version; callers pass the event's origin_server_ts),
   * or an old key whose `expired_ts` is after it. Missing keys are fetched;
   * a key that cannot be had is absent from the result (no throw).
   */
  getVerifyKeys(requests: ReadonlyArray<{ serverName: string; keyIds: readonly string[]; atTs?: number }>): Promise<Map<string, RemoteVerifyKey>>;
  /**
   * The stored responses of `serverName` (its own signed key objects), for
   * the notary endpoint: fetched if none is valid at `minimumValidUntilTs`.
   */
  serverKeyResponses(serverName: string, minimumValidUntilTs: number): Promise<JsonObject[]>;
}

/** Map key of KeyRing.getVerifyKeys results. */
export function remoteKeyId(serverName: string, keyId: string): string {
  return `${serverName}\u0000${keyId}`;
}
