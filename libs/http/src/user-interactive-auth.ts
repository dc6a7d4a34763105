import { randomBytes } from 'node:crypto';
import type { Cache } from '@atrium/cache';
import { MatrixError, Errors } from './matrix-error';

/**
 * User-interactive authentication. Spec: content/client-server-api/_index.md
 * "User-Interactive Authentication API" and "Authentication types".
 *
 * A request without `auth` gets 401 with the flows and a new session; each
 * submitted stage is checked by its verifier and recorded in the session; the
 * request proceeds once every stage of some flow is completed. Sessions live
 * in the cache so any replica can continue one.
 */

export interface UiaFlow {
  stages: string[];
}

/** Checks one stage's auth dict; throws a MatrixError (e.g. M_FORBIDDEN) if it fails. Returns the user the stage proved, if any. */
export type StageVerifier = (auth: Record<string, unknown>) => Promise<string | void>;

export interface UiaRequest {
  /** The request body's `auth` value (may be undefined). */
  auth: unknown;
  flows: UiaFlow[];
  verifiers: Record<string, StageVerifier>;
  params?: Record<string, unknown>;
  /**
   * What the session is bound to (endpoint + user): the spec forbids using a
   * session for a different operation than the one it was started for.
   */
  operation: string;
}

export interface UiaResult {
  session: string;
  completed: string[];
  /** Users proven by stages that identify one (m.login.password). */
  authenticatedUser?: string;
}

interface StoredSession {
  operation: string;
  completed: string[];
  authenticatedUser?: string;
}

const SESSION_TTL_MS = 30 * 60 * 1000;

export class UserInteractiveAuth {
  constructor(private readonly cache: Cache) {}

  async check(request: UiaRequest): Promise<UiaResult> {
    const { auth, flows } = request;
    if (auth === undefined || auth === null) {
      // "A request to an endpoint that uses User-Interactive Authentication never succeeds without auth."
      const session = await this.newSession(request.operation);
      throw this.challenge(request, session, []);
    }
    if (typeof auth !== 'object' || Array.isArray(auth)) throw Errors.badJson('"auth" must be an object');
    const authDict = auth as Record<string, unknown>;
    const sessionId = authDict.session;
    let session: StoredSession;
    let sessionKey: string;
    if (sessionId === undefined) {
      // Clients may complete a single-stage flow without first asking for a session.
      sessionKey = await this.newSession(request.operation);
      session = { operation: request.operation, completed: [] };
    } else {
      if (typeof sessionId !== 'string') throw Errors.badJson('"auth.session" must be a string');
      const stored = await this.cache.get(this.key(sessionId));
      if (!stored) throw new MatrixError(400, 'M_UNKNOWN', 'Unknown or expired UIA session');
      session = JSON.parse(stored) as StoredSession;
      if (session.operation !== request.operation) {
        throw Errors.forbidden('This UIA session was started for a different request');
      }
      sessionKey = sessionId;
    }

    const type = authDict.type;
    if (type !== undefined) {
      if (typeof type !== 'string') throw Errors.badJson('"auth.type" must be a string');
      const allowed = flows.some((flow) => flow.stages.includes(type));
      const verifier = request.verifiers[type];
      if (!allowed || !verifier) {
        throw this.challenge(request, sessionKey, session.completed, new MatrixError(400, 'M_UNRECOGNIZED', `Unsupported auth type ${type}`));
      }
      if (!session.completed.includes(type)) {
        try {
          const user = await verifier(authDict);
          if (user) {
            if (session.authenticatedUser && session.authenticatedUser !== user) {
              throw Errors.forbidden('Stages authenticated different users');
            }
            session.authenticatedUser = user;
          }
        } catch (err) {
          if (err instanceof MatrixError) throw this.challenge(request, sessionKey, session.completed, err);
          throw err;
        }
        session.completed = [...session.completed, type];
        await this.cache.set(this.key(sessionKey), JSON.stringify(session), SESSION_TTL_MS);
      }
    }

    const done = flows.some((flow) => flow.stages.every((stage) => session.completed.includes(stage)));
    if (!done) throw this.challenge(request, sessionKey, session.completed);
    // A completed session is spent: it cannot authorise a second request.
    await this.cache.delete(this.key(sessionKey));
    return { session: sessionKey, completed: session.completed, authenticatedUser: session.authenticatedUser };
  }

  private async newSession(operation: string): Promise<string> {
    const id = randomBytes(18).toString('base64url');
    const session: StoredSession = { operation, completed: [] };
    await this.cache.set(this.key(id), JSON.stringify(session), SESSION_TTL_MS);
    return id;
  }

  private key(session: string): string {
    return `uia:${session}`;
  }

  /** The 401 body: flows, params, session, completed, plus errcode/error when a stage failed. */
  private challenge(request: UiaRequest, session: string, completed: string[], cause?: MatrixError): MatrixError {
    const body: Record<string, unknown> = {
      flows: request.flows,
      params: request.params ?? {},
      session,
    };
    if (completed.length > 0) body.completed = completed;
    if (cause) {
      return new MatrixError(401, cause.errcode, cause.message, { ...body, ...cause.extra });
    }
    // Without a failure the body carries no errcode of its own; MatrixError needs one, so
    // the filter's output keeps the spec's shape by using the extra fields only.
    return new UiaChallenge(body);
  }
}

/** A 401 whose body is only the flows (no errcode), as the spec's first response shows. */
export class UiaChallenge extends MatrixError {
  constructor(body: Record<string, unknown>) {
    super(401, 'M_FORBIDDEN', 'Authentication required', body);
  }

  override toJSON(): Record<string, unknown> {
    return { ...this.extra };
  }
}
