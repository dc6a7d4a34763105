/**
 * What both adapters share about a message crossing the bus: payloads are
 * JSON (so a receiver never shares a mutable object with the sender, and both
 * adapters see the same value: `undefined` fields vanish, Dates become
 * strings), and a handler's error travels as { message, code, details }.
 */
import { BusRemoteError, type Headers } from './port';

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_ACK_WAIT_MS = 1_000;
export const DEFAULT_MAX_DELIVER = 10;
/** Code given to a handler error that has neither `errcode` nor `code`. */
export const UNKNOWN_ERROR_CODE = 'M_UNKNOWN';

/** JSON text of a payload; `undefined` (a handler returning nothing) is the empty string. */
export function encodePayload(data: unknown): string {
  if (data === undefined) return '';
  return JSON.stringify(data);
}

export function decodePayload<T>(text: string): T {
  return (text === '' ? undefined : JSON.parse(text)) as T;
}

/** A deep copy with JSON's semantics, as the NATS adapter would deliver it. */
export function jsonCopy<T>(data: T): T {
  return decodePayload<T>(encodePayload(data));
}

export interface RemoteErrorBody {
  message: string;
  code: string;
  details?: unknown;
}

/** The error a handler threw, as sent back to the caller: Matrix `errcode` first, then a string `code`. */
export function describeHandlerError(error: unknown): RemoteErrorBody {
  if (typeof error === 'object' && error !== null) {
    const { errcode, code, details, message } = error as { errcode?: unknown; code?: unknown; details?: unknown; message?: unknown };
    const chosen = typeof errcode === 'string' ? errcode : typeof code === 'string' ? code : UNKNOWN_ERROR_CODE;
    const body: RemoteErrorBody = { message: typeof message === 'string' ? message : String(error), code: chosen };
    if (details !== undefined) body.details = jsonCopy(details);
    return body;
  }
  return { message: String(error), code: UNKNOWN_ERROR_CODE };
}

export function remoteError(body: RemoteErrorBody): BusRemoteError {
  return new BusRemoteError(body.message, body.code, body.details);
}

export function copyHeaders(headers: Headers | undefined): Headers {
  return { ...(headers ?? {}) };
}
