/**
 * Matrix errors. Spec: content/client-server-api/_index.md "Standard error
 * response", "Common error codes", "Other error codes", "Rate limiting".
 * Every failure a handler reports is one of these; the exception filter turns
 * it into `{ errcode, error, ...extra }` with the status given here.
 */
export class MatrixError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
    /** Extra fields some error codes define (soft_logout, retry_after_ms, flows…). */
    readonly extra: Record<string, unknown> = {},
    /** Extra response headers (Retry-After for M_LIMIT_EXCEEDED). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'MatrixError';
  }

  toJSON(): Record<string, unknown> {
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}

export const Errors = {
  badJson: (message = 'Malformed request body') => new MatrixError(400, 'M_BAD_JSON', message),
  notJson: (message = 'Request body is not valid JSON') => new MatrixError(400, 'M_NOT_JSON', message),
  missingParam: (name: string) => new MatrixError(400, 'M_MISSING_PARAM', `Missing parameter: ${name}`),
  invalidParam: (message: string) => new MatrixError(400, 'M_INVALID_PARAM', message),
  forbidden: (message = 'Forbidden') => new MatrixError(403, 'M_FORBIDDEN', message),
  notFound: (message = 'Not found') => new MatrixError(404, 'M_NOT_FOUND', message),
  unrecognized: (message = 'Unrecognized request', status = 404) => new MatrixError(status, 'M_UNRECOGNIZED', message),
  tooLarge: (message = 'Request body too large') => new MatrixError(413, 'M_TOO_LARGE', message),
  missingToken: () => new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token'),
  /** `soft_logout: true` tells the client its session survives (expired token): see "Soft logout". */
  unknownToken: (softLogout = false, message = 'Unrecognised access token') =>
    new MatrixError(401, 'M_UNKNOWN_TOKEN', message, { soft_logout: softLogout }),
  limitExceeded: (retryAfterMs: number) =>
    new MatrixError(
      429,
      'M_LIMIT_EXCEEDED',
      'Too many requests',
      { retry_after_ms: retryAfterMs },
      // "Homeservers SHOULD include a Retry-After header for any response with a 429 status code" (seconds).
      { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
    ),
  userInUse: () => new MatrixError(400, 'M_USER_IN_USE', 'User ID already taken'),
  invalidUsername: (message = 'Invalid username') => new MatrixError(400, 'M_INVALID_USERNAME', message),
  userDeactivated: () => new MatrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated'),
  weakPassword: (message: string) => new MatrixError(400, 'M_WEAK_PASSWORD', message),
  guestAccessForbidden: () => new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guest access is not allowed'),
  unknown: (message = 'Internal server error') => new MatrixError(500, 'M_UNKNOWN', message),
  /** "Account locking": 401 with soft_logout true, so clients keep their session for when the lock is lifted. */
  userLocked: () => new MatrixError(401, 'M_USER_LOCKED', 'This account has been locked', { soft_logout: true }),
  /** "Account suspension": 403 for an action a suspended account may not take. */
  userSuspended: () => new MatrixError(403, 'M_USER_SUSPENDED', 'You cannot perform this action while suspended.'),
} as const;
