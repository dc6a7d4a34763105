import { readFileSync } from 'node:fs';
import type { DynamicModule, Type } from '@nestjs/common';
import { loadConfig, buildConfig, type AtriumConfig } from '@atrium/config';
import { createHttpApp } from './http-app';
import { openPlatform, type Platform } from './platform';

/** `--config PATH`, else ATRIUM_CONFIG, else ./atrium.yaml. */
export function configPathFromArgs(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): string {
  const index = argv.indexOf('--config');
  if (index >= 0 && argv[index + 1]) return argv[index + 1];
  return env.ATRIUM_CONFIG ?? 'atrium.yaml';
}

/** Loads the config file if it exists; a cluster service may be configured by environment alone. */
export function loadServiceConfig(path: string, env: NodeJS.ProcessEnv = process.env): AtriumConfig {
  try {
    readFileSync(path);
  } catch {
    return buildConfig('', env);
  }
  return loadConfig(path, env);
}

export interface RunningService {
  platform: Platform;
  /** Ports actually bound (useful when the config asked for port 0). */
  ports: number[];
  stop(): Promise<void>;
}

/**
 * Cluster mode: runs one service in this process on `listeners.service`,
 * stopping cleanly on SIGTERM/SIGINT (Kubernetes sends SIGTERM before killing).
 */
export async function startService(
  serviceName: string,
  modules: Array<Type<unknown> | DynamicModule>,
  config: AtriumConfig,
): Promise<RunningService> {
  const platform = await openPlatform(config, serviceName);
  const app = await createHttpApp({ platform, modules });
  const { host, port } = config.listeners.service;
  await app.listen({ host, port });
  const address = app.getHttpServer().address();
  const bound = typeof address === 'object' && address ? address.port : port;
  platform.telemetry.logger.info({ service: serviceName, port: bound }, 'service listening');
  return {
    platform,
    ports: [bound],
    async stop() {
      await app.close();
      await platform.close();
    },
  };
}

export async function runService(serviceName: string, modules: Array<Type<unknown> | DynamicModule>): Promise<void> {
  try {
    const config = loadServiceConfig(configPathFromArgs());
    const running = await startService(serviceName, modules, config);
    stopOnSignals(running.stop);
  } catch (err) {
    console.error(`${serviceName} failed to start: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  }
}

export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (): void => {
    if (stopping) return;
    stopping = true;
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
}
