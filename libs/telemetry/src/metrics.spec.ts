import { Metrics, metricName } from './metrics';

describe('Metrics', () => {
  it('prefixes names with atrium_ and registers each name once', async () => {
    const metrics = new Metrics();
    const first = metrics.counter('bus_messages_total', 'Messages sent', ['subject']);
    const again = metrics.counter('atrium_bus_messages_total', 'Messages sent', ['subject']);
    expect(again).toBe(first);
    first.inc({ subject: 'room.x' });
    again.inc({ subject: 'room.x' }, 2);
    const { contentType, body } = await metrics.text();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(body).toContain('# TYPE atrium_bus_messages_total counter');
    expect(body).toContain('atrium_bus_messages_total{subject="room.x"} 3');
  });

  it('refuses a name already registered as another kind', () => {
    const metrics = new Metrics();
    metrics.gauge('queue_depth', 'Queue depth', ['destination']);
    expect(() => metrics.counter('queue_depth', 'x')).toThrow(/atrium_queue_depth/);
  });

  it('exposes gauges and histograms in the text format', async () => {
    const metrics = new Metrics();
    metrics.gauge('federation_queue_depth', 'Queued PDUs per destination', ['destination']).set({ destination: 'example.org' }, 4);
    metrics.histogram('input_lag_seconds', 'Room-server input lag', [], [0.1, 1]).observe(0.5);
    const { body } = await metrics.text();
    expect(body).toContain('atrium_federation_queue_depth{destination="example.org"} 4');
    expect(body).toContain('atrium_input_lag_seconds_bucket{le="0.1"} 0');
    expect(body).toContain('atrium_input_lag_seconds_bucket{le="1"} 1');
    expect(body).toContain('atrium_input_lag_seconds_count 1');
  });

  it('collects Node.js process metrics under the prefix', async () => {
    const metrics = new Metrics();
    metrics.collectDefaults();
    const { body } = await metrics.text();
    expect(body).toContain('atrium_process_cpu_user_seconds_total');
    expect(body).toContain('atrium_nodejs_heap_size_used_bytes');
    expect(metricName('x')).toBe('atrium_x');
  });
});
