import { appendFile } from 'node:fs';
import type { DynamicModule, LoggerService, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DEFAULT_BODY_LIMIT, Errors, MatrixExceptionFilter, ROUTE_BODY_LIMITS } from '@atrium/http';
import { registerHttpTelemetry } from '@atrium/telemetry';
import type { Platform } from './platform';
import { PlatformModule } from './platform.module';

/**
 * Client-server-api "Web Browser Clients": servers answer pre-flight requests
 * and send these CORS headers on every response.
 */
const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'X-Requested-With, Content-Type, Authorization',
};

/**
 * JSON bodies: "Clients should supply a Content-Type header of application/json
 * … but this is not required", so every content type is parsed as JSON here
 * (media upload registers its own raw parser in its module). Invalid JSON is
 * M_NOT_JSON; an empty body is `undefined`, which handlers that need an object
 * refuse.
 */
function installJsonParser(fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'string', bodyLimit: DEFAULT_BODY_LIMIT }, (_req: FastifyRequest, body: string | Buffer, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(Errors.notJson(), undefined);
    }
  });
}

function installCors(fastify: FastifyInstance): void {
  fastify.addHook('onRequest', async (request, reply) => {
    reply.headers(CORS_HEADERS);
    if (request.method === 'OPTIONS') {
      await reply.status(204).send();
    }
  });
}

/**
 * `ATRIUM_RECORD_ROUTES=<file>`: each answered request appends
 * `METHOD <route pattern> <status> <path>` to the file, so a test run can tell
 * which endpoints it exercised (scripts/coverage-endpoints.mjs). The path
 * tells apart the operations one wildcard route serves; the query string (it
 * may hold an access token) is left out. Off unless set; appends are small
 * single writes, so the processes of a cluster can share one file.
 */
function installRouteRecorder(fastify: FastifyInstance, file: string): void {
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url;
    const path = request.url.split('?')[0];
    if (route) appendFile(file, `${request.method} ${route} ${reply.statusCode} ${path}\n`, () => undefined);
    done();
  });
}

export interface HttpAppOptions {
  platform: Platform;
  /** The service modules this app serves (one in cluster mode, all in embedded mode). */
  modules: Array<Type<unknown> | DynamicModule>;
}

/** Builds (without listening) a Nest app on Fastify with the platform, JSON parsing, CORS, telemetry and Matrix errors. */
export async function createHttpApp(options: HttpAppOptions): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({ bodyLimit: DEFAULT_BODY_LIMIT, trustProxy: true, logger: false, maxParamLength: 1000 });
  // A route's own bodyLimit overrides the parser's; set before Nest registers its routes.
  adapter.getInstance().addHook('onRoute', (route) => {
    const limit = ROUTE_BODY_LIMITS[route.url];
    if (limit !== undefined) route.bodyLimit = limit;
  });
  const { platform } = options;
  const root: DynamicModule = { module: AtriumRootModule, imports: [PlatformModule.forPlatform(platform), ...options.modules] };
  const app = await NestFactory.create<NestFastifyApplication>(root, adapter, {
    bodyParser: false,
    logger: new NestLogBridge(platform),
  });
  const fastify = app.getHttpAdapter().getInstance();
  installJsonParser(fastify);
  installCors(fastify);
  if (process.env.ATRIUM_RECORD_ROUTES) installRouteRecorder(fastify, process.env.ATRIUM_RECORD_ROUTES);
  registerHttpTelemetry(fastify, platform.telemetry, { serviceName: platform.serviceName });
  app.useGlobalFilters(new MatrixExceptionFilter());
  await app.init();
  return app;
}

/** The root of every Atrium Nest app; its imports are given per app. */
class AtriumRootModule {}

/**
 * Sends Nest's own log lines to the service's JSON logger. Nest 11 refuses a
 * subclass of its `Logger` here, so this implements `LoggerService` directly.
 */
class NestLogBridge implements LoggerService {
  constructor(private readonly platform: Platform) {}
  log(message: unknown, context?: string): void {
    this.platform.telemetry.logger.debug({ context }, String(message));
  }
  error(message: unknown, stack?: string, context?: string): void {
    this.platform.telemetry.logger.error({ context, stack }, String(message));
  }
  warn(message: unknown, context?: string): void {
    this.platform.telemetry.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string): void {
    this.platform.telemetry.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string): void {
    this.platform.telemetry.logger.trace({ context }, String(message));
  }
}
