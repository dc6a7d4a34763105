/**
 * JSON over HTTPS (or HTTP) trusting a given CA: what federation tests need to
 * talk to a server whose certificate the suite's test CA issued. Node's global
 * fetch takes no per-request CA, so this uses node:https directly.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';

export interface HttpsJsonOptions {
  method?: string;
  headers?: Record<string, string>;
  /** Sent as JSON (a string as it is). */
  body?: unknown;
  /** PEM file of the CA to trust (replaces the system roots, as a pinned test CA should). */
  caPath?: string;
  timeoutMs?: number;
}

export interface HttpsJsonResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON body; `{}` for an empty body, `{ raw }` for one that is not JSON. */
  json: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test code reads arbitrary response fields
  text: string;
}

export function httpsJson(url: string, options: HttpsJsonOptions = {}): Promise<HttpsJsonResponse> {
  const target = new URL(url);
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  const headers: Record<string, string> = { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers };
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: options.method ?? 'GET',
        headers,
        ...(target.protocol === 'https:' && options.caPath ? { ca: readFileSync(options.caPath) } : {}),
        timeout: options.timeoutMs ?? 30_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          let json: HttpsJsonResponse['json'] = {};
          if (text) {
            try {
              json = JSON.parse(text) as HttpsJsonResponse['json'];
            } catch {
              json = { raw: text };
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json, text });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${url} timed out`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}
