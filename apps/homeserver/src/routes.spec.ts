import { ALL_SERVICE_MODULES } from './embedded';
import { listRoutes } from './routes';

describe('listRoutes (the route table scripts/coverage-endpoints.mjs reads)', () => {
  const routes = listRoutes(ALL_SERVICE_MODULES);
  const keys = new Set(routes.map((r) => `${r.method} ${r.path}`));

  it('lists every prefix of a controller with the handler path, in Fastify form', () => {
    expect(keys).toContain('GET /_matrix/client/v3/capabilities');
    expect(keys).toContain('GET /_matrix/client/r0/capabilities');
    expect(keys).toContain('PUT /_matrix/client/v3/user/:userId/rooms/:roomId/tags/:tag');
    expect(keys).toContain('GET /_matrix/client/versions');
  });

  it('follows module imports and names the controller', () => {
    const capabilities = routes.find((r) => r.path === '/_matrix/client/v3/capabilities');
    expect(capabilities?.controller).toBe('CapabilitiesController');
    expect(routes.every((r) => r.path.startsWith('/'))).toBe(true);
  });
});
