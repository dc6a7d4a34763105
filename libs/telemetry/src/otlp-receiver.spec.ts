// Tests of the OTLP test receiver (tools/test-servers/otlp-receiver.ts), which
// has no Jest project of its own; the telemetry specs are its main users.
import { gzipSync } from 'node:zlib';
import { decodeOtlpTraces, startOtlpReceiver, type OtlpReceiver } from '../../../tools/test-servers/otlp-receiver';

const request = {
  resourceSpans: [
    {
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'federation-inbound' } }] },
      scopeSpans: [
        {
          scope: { name: '@atrium/telemetry' },
          spans: [
            {
              traceId: '5b8efff798038103d269b633813fc60c',
              spanId: 'eee19b7ec3c1b174',
              parentSpanId: 'eee19b7ec3c1b173',
              name: 'PUT /_matrix/federation/v1/send/:txnId',
              kind: 2,
              startTimeUnixNano: '1544712660000000000',
              endTimeUnixNano: '1544712661000000000',
              attributes: [
                { key: 'http.response.status_code', value: { intValue: '200' } },
                { key: 'ratio', value: { doubleValue: 0.5 } },
                { key: 'ok', value: { boolValue: true } },
                { key: 'event_ids', value: { arrayValue: { values: [{ stringValue: '$a' }, { stringValue: '$b' }] } } },
              ],
              status: { code: 2, message: 'failed' },
              links: [{ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' }],
            },
            { traceId: '5b8efff798038103d269b633813fc60c', spanId: 'aaa19b7ec3c1b174', parentSpanId: '', name: 'root', kind: 1 },
          ],
        },
      ],
    },
  ],
};

describe('OTLP receiver', () => {
  let receiver: OtlpReceiver;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
  });

  afterAll(async () => {
    await receiver.stop();
  });

  it('decodes OTLP JSON into flat spans', () => {
    const [span, root] = decodeOtlpTraces(request);
    expect(span).toMatchObject({
      traceId: '5b8efff798038103d269b633813fc60c',
      spanId: 'eee19b7ec3c1b174',
      parentSpanId: 'eee19b7ec3c1b173',
      kind: 2,
      kindName: 'SERVER',
      serviceName: 'federation-inbound',
      statusCode: 2,
      statusMessage: 'failed',
      attributes: { 'http.response.status_code': 200, ratio: 0.5, ok: true, event_ids: ['$a', '$b'] },
      links: [{ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' }],
    });
    expect(root.parentSpanId).toBeUndefined();
    expect(root.kindName).toBe('INTERNAL');
  });

  it('accepts plain and gzipped JSON on POST /v1/traces and wakes waiters', async () => {
    const waiting = receiver.waitFor((spans) => spans.filter((s) => s.name === 'root').length === 2, 5000);
    const plain = await fetch(`${receiver.url}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
    expect(plain.status).toBe(200);
    expect(await plain.json()).toEqual({});
    const gzipped = await fetch(`${receiver.url}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify(request)),
    });
    expect(gzipped.status).toBe(200);
    const spans = await waiting;
    expect(spans).toHaveLength(4);
    expect(receiver.spans()).toHaveLength(4);
  });

  it('refuses other paths, protobuf and invalid JSON, and times out waiting', async () => {
    expect((await fetch(`${receiver.url}/v1/metrics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(404);
    expect((await fetch(`${receiver.url}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: 'x' })).status).toBe(415);
    expect((await fetch(`${receiver.url}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' })).status).toBe(400);
    await expect(receiver.waitFor(() => false, 50)).rejects.toThrow(/within 50 ms/);
  });
});
