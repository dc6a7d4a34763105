import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { MatrixError, Errors } from './matrix-error';

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  message?: string;
}

/**
 * Turns anything a handler throws into a standard error response
 * (client-server-api "Standard error response"): Matrix errors as they are,
 * Fastify's body errors as M_TOO_LARGE / M_NOT_JSON, an unknown route as
 * M_UNRECOGNIZED, and anything else as a logged 500 M_UNKNOWN that reveals
 * nothing of the cause.
 */
@Catch()
export class MatrixExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('MatrixExceptionFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const error = this.toMatrixError(exception);
    if (error.status >= 500) {
      this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
    }
    reply.status(error.status).headers({ 'content-type': 'application/json', ...error.headers }).send(error.toJSON());
  }

  private toMatrixError(exception: unknown): MatrixError {
    if (exception instanceof MatrixError) return exception;
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      if (status === 404) return Errors.unrecognized('Unrecognized request');
      if (status === 405) return Errors.unrecognized('Method not allowed', 405);
      if (status === 413) return Errors.tooLarge();
      if (status === 429) return Errors.limitExceeded(1000);
      if (status < 500) return new MatrixError(status, 'M_UNKNOWN', exception.message);
      return Errors.unknown();
    }
    const fastifyError = exception as FastifyLikeError;
    switch (fastifyError?.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return Errors.tooLarge();
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return Errors.notJson();
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return Errors.notJson('Unsupported content type');
    }
    if (typeof fastifyError?.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
      return new MatrixError(fastifyError.statusCode, 'M_UNKNOWN', fastifyError.message ?? 'Bad request');
    }
    return Errors.unknown();
  }
}
