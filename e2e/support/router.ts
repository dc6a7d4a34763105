import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * A path-routing reverse proxy for cluster-mode tests: the same job nginx does
 * in docker-compose and the Ingress does in Helm (deploy/README.md), so the
 * client sees one base URL while each path prefix reaches its own service.
 */
export interface Route {
  pattern: RegExp;
  target: string; // app name
}

/** Longest-prefix routing table of ARCHITECTURE.md / deploy: first match wins. */
export const CLUSTER_ROUTES: Route[] = [
  { pattern: /^\/_matrix\/(client\/v1\/media|media|federation\/v1\/media)\//, target: 'media-repo' },
  { pattern: /^\/_matrix\/client\/(r0|v3|unstable)\/(keys|room_keys)\//, target: 'key-server' },
  { pattern: /^\/_matrix\/key\//, target: 'key-server' },
  { pattern: /^\/_matrix\/federation\/v1\/user\/(keys|devices)\//, target: 'key-server' },
  { pattern: /^\/_matrix\/federation\//, target: 'federation-inbound' },
  { pattern: /^\/\.well-known\/matrix\/server/, target: 'federation-inbound' },
  { pattern: /^\//, target: 'client-api' },
];

/** A TLS listener for federation on a fixed port (the one in the server name), as the proxy terminating TLS. */
export interface RouterTls {
  port: number;
  certPath: string;
  keyPath: string;
}

/**
 * `targets`: the ports of each app's replicas; requests go to them in turn (round robin).
 * With `tls`, the same routing is also served over TLS on `tls.port` (`federationUrl`).
 */
export async function startRouter(targets: Record<string, number[]>, tls?: RouterTls): Promise<{ url: string; federationUrl?: string; stop(): Promise<void> }> {
  const turns = new Map<string, number>();
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const route = CLUSTER_ROUTES.find((r) => r.pattern.test(req.url ?? '/'));
    const replicas = route ? targets[route.target] : undefined;
    let port: number | undefined;
    if (route && replicas && replicas.length > 0) {
      const turn = turns.get(route.target) ?? 0;
      turns.set(route.target, turn + 1);
      port = replicas[turn % replicas.length];
    }
    if (!port) {
      res.writeHead(502).end();
      return;
    }
    // The body is read whole before it is forwarded, as nginx does by default
    // (proxy_request_buffering): a service that answers 413 early and closes
    // then cannot break the proxy's half-sent request.
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const headers = { ...req.headers, 'x-forwarded-for': req.socket.remoteAddress ?? '' };
      if (body.length > 0 || headers['content-length'] !== undefined) headers['content-length'] = String(body.length);
      delete headers['transfer-encoding'];
      const upstream = httpRequest({ host: '127.0.0.1', port, method: req.method, path: req.url, headers }, (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      });
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      upstream.end(body);
    });
  };
  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  const close = (s: Server): Promise<void> => new Promise<void>((resolve) => s.close(() => resolve()));
  if (!tls) return { url: `http://127.0.0.1:${port}`, stop: () => close(server) };
  const tlsServer = createHttpsServer({ cert: readFileSync(tls.certPath), key: readFileSync(tls.keyPath) }, handle);
  try {
    await new Promise<void>((resolve, reject) => {
      tlsServer.once('error', reject);
      tlsServer.listen(tls.port, '127.0.0.1', () => resolve());
    });
  } catch (err) {
    await close(server);
    throw err;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    federationUrl: `https://127.0.0.1:${tls.port}`,
    stop: async () => {
      await Promise.all([close(server), close(tlsServer)]);
    },
  };
}
