/**
 * One HTTPS exchange with a remote server: TLS always (server-server-api
 * "TLS": "Server-server communication must take place over HTTPS"), the
 * certificate checked for the name resolution gave, extra CAs added to
 * Node's default roots, and the IP blocklist checked on the address actually
 * connected to (a custom DNS lookup, and a check of IP literals before
 * connecting). Used by the resolver (/.well-known) and the client.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent, request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { isIP, type LookupFunction } from 'node:net';
import { checkServerIdentity, rootCertificates, type PeerCertificate } from 'node:tls';
import { IpRangeFilter } from './ip-ranges';

export interface TransportOptions {
  /** PEM texts of extra trusted CAs, added to Node's default roots. */
  extraCaPems: readonly string[];
  ipFilter: IpRangeFilter;
}

export interface HttpsTarget {
  /** IP literal (without brackets) or DNS name to connect to. */
  host: string;
  port: number;
  /** Host header value. */
  hostHeader: string;
  /** The name (DNS name or IP literal) the certificate must be valid for. */
  tlsServerName: string;
}

export interface HttpsExchange {
  method: string;
  /** Path and query, as sent on the request line. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Milliseconds until the exchange is abandoned (connect, TLS, headers and body together). */
  timeoutMs: number;
  /** The largest response body read; a larger one fails with reason `protocol`. */
  maxBytes: number;
}

export interface HttpsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type TransportFailure = 'resolve' | 'blocked' | 'connect' | 'tls' | 'timeout' | 'protocol';

/** A failed exchange, before it is tied to a destination (the caller wraps it in FederationUnreachableError). */
export class TransportError extends Error {
  constructor(
    readonly reason: TransportFailure,
    message: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

/** Node error codes of failed certificate checks and handshakes. */
function isTlsErrorCode(code: string | undefined): boolean {
  if (!code) return false;
  return (
    code.startsWith('ERR_TLS') ||
    code.startsWith('ERR_SSL') ||
    code.startsWith('CERT_') ||
    code.includes('CERT') ||
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' ||
    code === 'EPROTO'
  );
}

function classify(err: NodeJS.ErrnoException): TransportError {
  const code = err.code;
  if (err instanceof TransportError) return err;
  if (code === 'EBLOCKED') return new TransportError('blocked', err.message);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ENODATA' || code === 'EAI_NODATA') return new TransportError('resolve', err.message);
  if (isTlsErrorCode(code)) return new TransportError('tls', `${code}: ${err.message}`);
  return new TransportError('connect', code ? `${code}: ${err.message}` : err.message);
}

export class HttpsTransport {
  private readonly agent: Agent;

  constructor(private readonly options: TransportOptions) {
    const ca = [...rootCertificates, ...options.extraCaPems];
    this.agent = new Agent({ keepAlive: true, maxSockets: 20, ca, lookup: this.lookup });
  }

  /**
   * dns.lookup with every blocked address dropped; none left is an error of
   * code EBLOCKED. Node's connect (and its "happy eyeballs" with `all`) calls
   * this, so what is connected to is what was checked.
   */
  private readonly lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const allowed = addresses.filter((a) => !this.options.ipFilter.isBlocked(a.address));
      if (allowed.length === 0) {
        const blocked = Object.assign(new Error(`${hostname} resolves only to blocked addresses (${addresses.map((a) => a.address).join(', ')})`), { code: 'EBLOCKED' });
        return callback(blocked, '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
      callback(null, allowed[0].address, allowed[0].family);
    });
  };

  close(): void {
    this.agent.destroy();
  }

  exchange(target: HttpsTarget, exchange: HttpsExchange): Promise<HttpsResponse> {
    return new Promise<HttpsResponse>((resolve, reject) => {
      // An IP literal is connected to without a lookup: check it here.
      if (isIP(target.host) !== 0 && this.options.ipFilter.isBlocked(target.host)) {
        reject(new TransportError('blocked', `${target.host} is in a blocked IP range`));
        return;
      }
      const serverNameIsIp = isIP(target.tlsServerName) !== 0;
      let settled = false;
      const fail = (err: TransportError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(err);
      };
      const req = httpsRequest({
        agent: this.agent,
        host: target.host,
        port: target.port,
        method: exchange.method,
        path: exchange.path,
        headers: { ...exchange.headers, Host: target.hostHeader, ...(exchange.body ? { 'Content-Length': String(exchange.body.length) } : {}) },
        // SNI names the certificate expected, "unless that certificate is
        // expected to be an IP address in which case SNI is not supported and
        // should not be sent" (server-server-api "TLS").
        ...(serverNameIsIp ? {} : { servername: target.tlsServerName }),
        // The certificate must be valid for the name resolution gave, which is
        // not the host connected to when SRV or delegation moved us elsewhere.
        checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(target.tlsServerName, cert),
        rejectUnauthorized: true,
      });
      const timer = setTimeout(() => fail(new TransportError('timeout', `no complete answer within ${exchange.timeoutMs} ms`)), exchange.timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => fail(classify(err)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > exchange.maxBytes) {
          fail(new TransportError('protocol', `response of ${declared} bytes is over the ${exchange.maxBytes} byte limit`));
          return;
        }
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > exchange.maxBytes) {
            fail(new TransportError('protocol', `response is over the ${exchange.maxBytes} byte limit`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err: NodeJS.ErrnoException) => fail(classify(err)));
        res.on('aborted', () => fail(new TransportError('connect', 'the connection closed before the answer was complete')));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
      });
      req.end(exchange.body);
    });
  }
}
