import { Controller, Get, Header, HttpCode, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Platform } from './platform';

/**
 * Operational endpoints every service serves (ARCHITECTURE.md "Observability"):
 * /health (the process is alive), /ready (its storage, bus and cache answer),
 * /metrics (Prometheus text).
 */
@Controller()
export class OpsController {
  constructor(@Inject('ATRIUM_PLATFORM') private readonly platform: Platform) {}

  /** Names the service and its process, so an operator (or a test harness) can tell which process a port reaches. */
  @Get('health')
  @HttpCode(200)
  health(): { status: string; service: string; pid: number } {
    return { status: 'ok', service: this.platform.serviceName, pid: process.pid };
  }

  @Get('ready')
  async ready(@Res() reply: FastifyReply): Promise<void> {
    const check = async (ping: () => Promise<boolean>): Promise<boolean> => {
      try {
        return await ping();
      } catch {
        return false;
      }
    };
    const [storage, bus, cache] = await Promise.all([
      check(() => this.platform.store.ping()),
      check(() => this.platform.bus.ping()),
      check(() => this.platform.cache.ping()),
    ]);
    const ok = storage && bus && cache;
    await reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', storage, bus, cache });
  }

  @Get('metrics')
  @Header('cache-control', 'no-store')
  async metrics(@Res() reply: FastifyReply): Promise<void> {
    const { contentType, body } = await this.platform.telemetry.metricsText();
    await reply.header('content-type', contentType).send(body);
  }
}
