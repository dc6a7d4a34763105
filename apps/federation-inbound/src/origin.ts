import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { MatrixError } from '@atrium/http';

/**
 * The requesting server's name, as the X-Matrix guard of federation-inbound
 * established it (docs/federation-design.md "Transport rules"). Until the
 * guard sets it, a request has no origin and is refused with 401, as an
 * unsigned request would be.
 */
export const FederationOrigin = createParamDecorator((_: unknown, context: ExecutionContext): string => {
  const request = context.switchToHttp().getRequest<{ federationOrigin?: string; matrixOrigin?: string }>();
  const origin = request.federationOrigin ?? request.matrixOrigin;
  if (typeof origin !== 'string' || origin === '') throw new MatrixError(401, 'M_UNAUTHORIZED', 'Missing or invalid X-Matrix authorization');
  return origin;
});
