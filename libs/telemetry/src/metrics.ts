import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';

/** Every Atrium metric name starts with this (ARCHITECTURE.md "Observability"). */
export const METRIC_PREFIX = 'atrium_';

/** Latency buckets (seconds) for request-like work: 1 ms … 30 s. */
export const DEFAULT_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function metricName(name: string): string {
  return name.startsWith(METRIC_PREFIX) ? name : `${METRIC_PREFIX}${name}`;
}

/**
 * Prometheus metrics of one process. Registration is idempotent: asking twice
 * for the same name returns the same metric, so modules sharing a process (the
 * embedded mode) can each declare what they use. A name given without the
 * `atrium_` prefix gets it.
 */
export class Metrics {
  readonly registry: Registry;

  constructor(registry?: Registry) {
    this.registry = registry ?? new Registry();
  }

  /** Node.js process metrics (CPU, memory, event loop lag, GC) under `atrium_`. */
  collectDefaults(): void {
    collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  counter<L extends string>(name: string, help: string, labels: readonly L[] = []): Counter<L> {
    return this.getOrCreate(name, Counter, () => new Counter<L>({ name: metricName(name), help, labelNames: labels, registers: [this.registry] }));
  }

  gauge<L extends string>(name: string, help: string, labels: readonly L[] = []): Gauge<L> {
    return this.getOrCreate(name, Gauge, () => new Gauge<L>({ name: metricName(name), help, labelNames: labels, registers: [this.registry] }));
  }

  histogram<L extends string>(name: string, help: string, labels: readonly L[] = [], buckets: number[] = DEFAULT_DURATION_BUCKETS): Histogram<L> {
    return this.getOrCreate(name, Histogram, () => new Histogram<L>({ name: metricName(name), help, labelNames: labels, buckets, registers: [this.registry] }));
  }

  /** The Prometheus text exposition of every metric, with its content type, for `/metrics`. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private getOrCreate<M>(name: string, kind: abstract new (...args: never[]) => M, create: () => M): M {
    const existing: Metric | undefined = this.registry.getSingleMetric(metricName(name));
    if (existing === undefined) return create();
    if (!(existing instanceof kind)) {
      throw new Error(`metric ${metricName(name)} is already registered as another kind`);
    }
    return existing;
  }
}
