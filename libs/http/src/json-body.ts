import { Errors } from './matrix-error';

/** Request bodies larger than this are refused with M_TOO_LARGE before parsing. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/**
 * Routes whose bodies may exceed DEFAULT_BODY_LIMIT, by Fastify route pattern.
 * A federation transaction holds up to 50 PDUs of up to 65,536 bytes each
 * and 100 EDUs (server-server-api "Transactions", "Size limits"): 3.2 MiB of
 * PDUs alone, so /send gets 8 MiB.
 */
export const ROUTE_BODY_LIMITS: Readonly<Record<string, number>> = {
  '/_matrix/federation/v1/send/:txnId': 8 * 1024 * 1024,
};

/**
 * "All POST and PUT endpoints … require the client to supply a request body
 * containing a (potentially empty) JSON object" (client-server-api "API
 * Standards"). Handlers call this to get that object, or M_NOT_JSON.
 */
export function requireJsonObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw Errors.notJson('Request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

/** Same as requireJsonObject but an absent body counts as `{}` (logout, optional-body endpoints). */
export function optionalJsonObject(body: unknown): Record<string, unknown> {
  return body === undefined || body === null ? {} : requireJsonObject(body);
}

export function requireString(body: Record<string, unknown>, key: string): string {
  const value = body[key];
  if (value === undefined) throw Errors.missingParam(key);
  if (typeof value !== 'string') throw Errors.badJson(`"${key}" must be a string`);
  return value;
}

export function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw Errors.badJson(`"${key}" must be a string`);
  return value;
}

export function optionalBoolean(body: Record<string, unknown>, key: string): boolean | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw Errors.badJson(`"${key}" must be a boolean`);
  return value;
}

export function optionalStringArray(body: Record<string, unknown>, key: string): string[] | undefined {
  const value = body[key];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw Errors.badJson(`"${key}" must be a list of strings`);
  }
  return value as string[];
}

export function optionalObject(body: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw Errors.badJson(`"${key}" must be an object`);
  return value as Record<string, unknown>;
}
