/**
 * Request authentication between servers: the `X-Matrix` Authorization
 * header and the signed request object it carries.
 * Spec: content/server-server-api.md "Authentication" / "Request
 * Authentication"; header grammar from RFC 9110 §11.4 (credentials) and
 * §5.6.2 (token), §5.6.4 (quoted-string).
 */
import type { JsonValue } from '../events/pdu';
import { ED25519 } from '../signing/keys';
import { signJson, verifySignatureBytes, signedBytes, type JsonSigner, type VerifyKeyLookup } from '../signing/sign-json';

/** The parameters of an `X-Matrix` header. */
export interface XMatrixAuth {
  origin: string;
  /** Added in v1.3; recipients accept its absence "for compatibility with older servers". */
  destination?: string;
  /** Key ID with its algorithm, `ed25519:abc`. */
  key: string;
  /** Unpadded Base64 signature of the request object. */
  sig: string;
}

/** What is signed (step 1 of "Request Authentication"): `content` only when the request has a body. */
export interface FederationRequestObject {
  method: string;
  /** Path and query as sent, starting with `/_matrix/` (no scheme, no host). */
  uri: string;
  origin: string;
  destination: string;
  content?: JsonValue;
}

const SCHEME = 'X-Matrix';
/** RFC 9110 §5.6.2 tchar. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function quote(value: string): string {
  // Senders "should avoid using backslashes in parameter values"; server
  // names, key IDs and Base64 never need them, but a stray `"` or `\` is
  // still escaped so the header stays parseable.
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/**
 * Formats the header the way the spec asks senders to for old recipients:
 * one space after the scheme, lower-case names, every value quoted, no
 * whitespace around the commas, and `destination` always present.
 */
export function formatXMatrix(auth: XMatrixAuth & { destination: string }): string {
  return `${SCHEME} origin=${quote(auth.origin)},destination=${quote(auth.destination)},key=${quote(auth.key)},sig=${quote(auth.sig)}`;
}

export type XMatrixParseResult = { ok: true; auth: XMatrixAuth } | { ok: false; error: string };

/**
 * Parses an Authorization header value with the `X-Matrix` scheme. The
 * scheme and parameter names are case-insensitive, parameters may come in
 * any order with spaces or tabs around the commas, quoted values are
 * unescaped (`\x` → `x`), and unknown parameters are ignored.
 *
 * Leniency, on purpose: an unquoted value is read up to the next comma or
 * whitespace, so besides RFC 9110 tokens it may hold `:` (which the spec
 * asks recipients to allow for older servers) and the `/`, `=` of Base64
 * that some senders leave unquoted. A parameter given twice is refused, since
 * which one was signed is ambiguous.
 */
export function parseXMatrix(header: string): XMatrixParseResult {
  const fail = (error: string): XMatrixParseResult => ({ ok: false, error });
  const match = /^([^ \t]+)[ \t]+/.exec(header);
  if (!match || match[1].toLowerCase() !== SCHEME.toLowerCase()) return fail('not an X-Matrix Authorization header');
  let i = match[0].length;
  const params = new Map<string, string>();
  const skipSpace = (): void => {
    while (i < header.length && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  while (i < header.length) {
    skipSpace();
    if (header[i] === ',') {
      // Empty list elements are allowed by RFC 9110's list syntax (#rule).
      i++;
      continue;
    }
    if (i >= header.length) break;
    const eq = header.indexOf('=', i);
    if (eq < 0) return fail('parameter without a value');
    const name = header.slice(i, eq).trim().toLowerCase();
    if (!TOKEN.test(name)) return fail(`invalid parameter name ${JSON.stringify(header.slice(i, eq))}`);
    i = eq + 1;
    skipSpace();
    let value = '';
    if (header[i] === '"') {
      i++;
      let closed = false;
      while (i < header.length) {
        const c = header[i];
        if (c === '\\') {
          if (i + 1 >= header.length) return fail('unterminated escape in a quoted value');
          value += header[i + 1];
          i += 2;
        } else if (c === '"') {
          closed = true;
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) return fail('unterminated quoted value');
    } else {
      const start = i;
      while (i < header.length && header[i] !== ',' && header[i] !== ' ' && header[i] !== '\t' && header[i] !== '"') i++;
      value = header.slice(start, i);
      if (value === '') return fail(`empty value for ${name}`);
    }
    skipSpace();
    if (i < header.length && header[i] !== ',') return fail(`unexpected character after ${name}`);
    if (params.has(name)) return fail(`parameter ${name} given twice`);
    params.set(name, value);
  }
  const origin = params.get('origin');
  const key = params.get('key');
  const sig = params.get('sig');
  if (!origin) return fail('missing origin');
  if (!key) return fail('missing key');
  if (!sig) return fail('missing sig');
  const destination = params.get('destination');
  return { ok: true, auth: destination === undefined ? { origin, key, sig } : { origin, destination, key, sig } };
}

/** The request object of step 1, with `content` left out when there is no body (the spec's `if content is not None`). */
export function requestObject(request: FederationRequestObject): FederationRequestObject {
  const object: FederationRequestObject = {
    method: request.method,
    uri: request.uri,
    origin: request.origin,
    destination: request.destination,
  };
  if (request.content !== undefined) object.content = request.content;
  return object;
}

/**
 * Signs a request as `request.origin` with `key` and returns the
 * Authorization header value to send (step 2).
 */
export function signRequest(request: FederationRequestObject, key: JsonSigner): string {
  const signed = signJson(requestObject(request), request.origin, key);
  return formatXMatrix({ origin: request.origin, destination: request.destination, key: key.keyId, sig: signed.signatures[request.origin][key.keyId] });
}

export type RequestVerifyFailure =
  /** No header, or not a parseable X-Matrix one. */
  | 'malformed'
  /** `destination` present and not the receiving server. */
  | 'wrong-destination'
  /** Key algorithm other than ed25519. */
  | 'unsupported-algorithm'
  /** No key known for the origin and key ID (or none valid now). */
  | 'unknown-key'
  | 'bad-signature';

export type RequestVerifyResult =
  | { ok: true; origin: string; keyId: string }
  | { ok: false; reason: RequestVerifyFailure; detail: string; origin?: string };

export interface ReceivedRequest {
  method: string;
  /** Path and query exactly as received. */
  uri: string;
  /** The parsed JSON body, or undefined when the request had none. */
  content?: JsonValue;
  /** The Authorization header value. */
  authorization: string | undefined;
}

/**
 * Checks a received request: parses the header, refuses a `destination` that
 * is not `ourServerName` (the spec's 401), and verifies the signature over
 * the rebuilt request object with the origin's key from `lookup`. When the
 * sender left `destination` out, the object is rebuilt with our own name, as
 * the sender must have signed it with (step 1 always has a destination).
 * `now` (ms) skips a key known to have expired before the request.
 */
export function verifyRequest(
  request: ReceivedRequest,
  ourServerName: string,
  lookup: VerifyKeyLookup,
  now: number = Date.now(),
): RequestVerifyResult {
  if (request.authorization === undefined) return { ok: false, reason: 'malformed', detail: 'missing Authorization header' };
  const parsed = parseXMatrix(request.authorization);
  if (!parsed.ok) return { ok: false, reason: 'malformed', detail: parsed.error };
  return verifyParsedRequest(parsed.auth, request, ourServerName, lookup, now);
}

/** verifyRequest for an already parsed header (a guard parses first to know which keys to fetch). */
export function verifyParsedRequest(
  auth: XMatrixAuth,
  request: Omit<ReceivedRequest, 'authorization'>,
  ourServerName: string,
  lookup: VerifyKeyLookup,
  now: number = Date.now(),
): RequestVerifyResult {
  const { origin, key: keyId, sig } = auth;
  if (auth.destination !== undefined && auth.destination !== ourServerName) {
    return { ok: false, reason: 'wrong-destination', detail: `request is for ${auth.destination}, not ${ourServerName}`, origin };
  }
  if (!keyId.startsWith(`${ED25519}:`)) return { ok: false, reason: 'unsupported-algorithm', detail: `key ${keyId} is not ed25519`, origin };
  const known = lookup(origin, keyId);
  if (!known || (known.validUntilTs !== undefined && known.validUntilTs < now)) {
    return { ok: false, reason: 'unknown-key', detail: `no valid key ${keyId} known for ${origin}`, origin };
  }
  const object = requestObject({ method: request.method, uri: request.uri, origin, destination: auth.destination ?? ourServerName, content: request.content });
  if (!verifySignatureBytes(signedBytes(object), sig, known.key)) {
    return { ok: false, reason: 'bad-signature', detail: `signature by ${origin} ${keyId} does not verify`, origin };
  }
  return { ok: true, origin, keyId };
}
