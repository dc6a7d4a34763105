import { InProcessBus } from './in-process-bus';
import { NatsBus } from './nats-bus';
import type { Bus } from './port';

/**
 * The bus named by the config's `bus.url`: `inprocess:` (embedded mode) or
 * `nats://host:port[,host:port...]` (cluster mode; the list is the NATS
 * cluster's seed servers).
 */
export async function openBus(url: string, options: { name?: string } = {}): Promise<Bus> {
  const trimmed = url.trim();
  if (trimmed === 'inprocess:' || trimmed === 'inprocess://') return new InProcessBus();
  if (/^(nats|tls):\/\//i.test(trimmed)) return NatsBus.connect(trimmed, options);
  throw new Error(`unsupported bus URL ${JSON.stringify(url)}: use inprocess: or nats://host:port[,host:port]`);
}
