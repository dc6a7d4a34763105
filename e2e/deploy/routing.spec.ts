/**
 * The route resolvers the deployment tests rely on, checked against the
 * matching rules they model, so an agreement between nginx.conf and the
 * Ingress means the real front ends agree.
 */
import { type IngressPath, nginxLocations, parseNginx, resolveIngress, resolveNginx } from './routing';

describe('resolveNginx (ngx_http_core_module location selection)', () => {
  const server = parseNginx(`
    server {
      location / { proxy_pass http://root; }
      location /a/ { proxy_pass http://a; }
      location /a/b/ { proxy_pass http://ab; }
      location ^~ /static/ { proxy_pass http://static; }
      location ~ \\.png$ { proxy_pass http://png; }
      location ~* \\.JPG$ { proxy_pass http://jpg; }
      location = /a/exact { proxy_pass http://exact; }
    }`)[0];
  const locations = nginxLocations(server);
  const target = (path: string): string | undefined => resolveNginx(locations, path)?.proxyPass;

  it('takes the longest prefix', () => {
    expect(target('/a/b/c')).toBe('http://ab');
    expect(target('/a/c')).toBe('http://a');
    expect(target('/ab')).toBe('http://root');
  });

  it('lets a regex beat a prefix, unless the prefix has ^~', () => {
    expect(target('/a/b/x.png')).toBe('http://png');
    expect(target('/static/x.png')).toBe('http://static');
    expect(target('/a/photo.jpg')).toBe('http://jpg');
  });

  it('prefers an exact match over everything', () => {
    expect(target('/a/exact')).toBe('http://exact');
    expect(target('/a/exact/more')).toBe('http://a');
  });

  it('parses quoted arguments and comments, and rejects unbalanced blocks', () => {
    const [d] = parseNginx(`log_format main '$remote_addr "$request"'; # trailing comment`);
    expect(d).toEqual({ name: 'log_format', args: ['main', '$remote_addr "$request"'] });
    expect(() => parseNginx('http { server { }')).toThrow('missing }');
    expect(() => parseNginx('listen 80')).toThrow('lacks ;');
  });
});

describe('resolveIngress (networking.k8s.io/v1 path matching)', () => {
  const paths: IngressPath[] = [
    { path: '/', pathType: 'Prefix', backend: 'root' },
    { path: '/foo', pathType: 'Prefix', backend: 'foo' },
    { path: '/foo/bar/', pathType: 'Prefix', backend: 'foobar' },
    { path: '/foo/bar', pathType: 'Exact', backend: 'exact' },
  ];

  it('matches Prefix paths element by element', () => {
    expect(resolveIngress(paths, '/foo/baz')).toBe('foo');
    expect(resolveIngress(paths, '/foobar')).toBe('root');
    expect(resolveIngress(paths, '/foo/bar/baz')).toBe('foobar');
  });

  it('ignores a trailing slash on a Prefix and prefers Exact at equal length', () => {
    expect(resolveIngress(paths, '/foo/bar')).toBe('exact');
    expect(resolveIngress(paths, '/foo/bar/')).toBe('foobar');
  });

  it('refuses ImplementationSpecific paths', () => {
    expect(() => resolveIngress([{ path: '/x', pathType: 'ImplementationSpecific', backend: 'x' }], '/x')).toThrow(
      'ImplementationSpecific',
    );
  });
});
