import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { MatrixError } from '@atrium/http';
import type { FederationAuthenticated } from './auth/x-matrix.guard';

/**
 * The requesting server's name, as XMatrixGuard established it
 * (docs/federation-design.md "Transport rules"). A route the guard did not
 * cover has no origin and is refused with 401, as an unsigned request would be.
 */
export const FederationOrigin = createParamDecorator((_: unknown, context: ExecutionContext): string => {
  const origin = context.switchToHttp().getRequest<FederationAuthenticated>().federationOrigin;
  if (typeof origin !== 'string' || origin === '') throw new MatrixError(401, 'M_UNAUTHORIZED', 'Missing or invalid X-Matrix authorization');
  return origin;
});
