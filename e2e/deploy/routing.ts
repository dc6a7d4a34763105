/**
 * Path routing as each deployment front end does it, so the tests can ask
 * "which app answers this path?" of deploy/routes.yaml, of nginx.conf and of
 * a rendered Kubernetes Ingress, and compare the answers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

export const repoRoot = join(__dirname, '..', '..');

/** The apps of cluster mode (every folder of apps/ but the embedded `homeserver`). */
export const CLUSTER_APPS = [
  'client-api',
  'federation-inbound',
  'federation-outbound',
  'key-server',
  'media-repo',
  'push-gateway',
  'room-server',
] as const;

/** Apps that receive traffic from the proxy / Ingress. */
export const ROUTED_APPS = ['client-api', 'federation-inbound', 'key-server', 'media-repo'] as const;

export interface Route {
  path: string;
  app: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseRoutes(value: unknown, where: string): Route[] {
  if (!Array.isArray(value)) throw new Error(`${where}: routes must be a list`);
  return value.map((entry, i) => {
    if (!isRecord(entry) || typeof entry.path !== 'string' || typeof entry.app !== 'string') {
      throw new Error(`${where}: route ${i} needs a string path and app`);
    }
    return { path: entry.path, app: entry.app };
  });
}

/** deploy/routes.yaml, the reference table. */
export function loadReferenceRoutes(): Route[] {
  const doc: unknown = parseYaml(readFileSync(join(repoRoot, 'deploy', 'routes.yaml'), 'utf8'));
  if (!isRecord(doc)) throw new Error('deploy/routes.yaml must be a mapping');
  return parseRoutes(doc.routes, 'deploy/routes.yaml');
}

/** The reference semantics: the longest route that is a string prefix of the path. */
export function resolveLongestPrefix(routes: Route[], path: string): string | undefined {
  let best: Route | undefined;
  for (const route of routes) {
    if (path.startsWith(route.path) && (!best || route.path.length > best.path.length)) best = route;
  }
  return best?.app;
}

// ---- Kubernetes Ingress ----

export interface IngressPath {
  path: string;
  pathType: 'Prefix' | 'Exact' | 'ImplementationSpecific';
  backend: string;
}

/**
 * Ingress path matching as the networking.k8s.io/v1 API defines it: `Exact`
 * matches the whole path; `Prefix` matches element by element on `/`
 * (`/foo/bar` matches `/foo/bar/baz`, not `/foo/barbaz`; a trailing slash is
 * ignored); the longest matching path wins, Exact before Prefix at equal
 * length. ImplementationSpecific depends on the controller, so it is refused.
 */
export function resolveIngress(paths: IngressPath[], requestPath: string): string | undefined {
  const elements = (p: string): string[] => p.split('/').filter((e) => e !== '');
  const request = elements(requestPath);
  let best: { length: number; exact: boolean; backend: string } | undefined;
  for (const candidate of paths) {
    if (candidate.pathType === 'ImplementationSpecific') {
      throw new Error(`path ${candidate.path} is ImplementationSpecific: its matching depends on the controller`);
    }
    const exact = candidate.pathType === 'Exact';
    let matches: boolean;
    if (exact) {
      matches = candidate.path === requestPath;
    } else {
      const prefix = elements(candidate.path);
      matches = prefix.length <= request.length && prefix.every((e, i) => request[i] === e);
    }
    if (!matches) continue;
    const length = candidate.path.replace(/\/+$/, '').length;
    if (!best || length > best.length || (length === best.length && exact && !best.exact)) {
      best = { length, exact, backend: candidate.backend };
    }
  }
  return best?.backend;
}

// ---- nginx ----

export interface NginxDirective {
  name: string;
  args: string[];
  block?: NginxDirective[];
}

/** Parses nginx configuration syntax into a directive tree (words, quotes, `;` and `{}` blocks). */
export function parseNginx(text: string): NginxDirective[] {
  const tokens: string[] = [];
  const tokenPattern = /\s+|#[^\n]*|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([{};])|([^\s{};"'#]+)/gy;
  let match: RegExpExecArray | null;
  while (tokenPattern.lastIndex < text.length && (match = tokenPattern.exec(text)) !== null) {
    if (match[1] !== undefined) tokens.push(match[1]);
    else if (match[2] !== undefined) tokens.push(match[2]);
    else if (match[3] !== undefined) tokens.push(match[3]);
    else if (match[4] !== undefined) tokens.push(match[4]);
  }
  if (tokenPattern.lastIndex < text.length) throw new Error(`nginx: cannot tokenise at offset ${tokenPattern.lastIndex}`);

  let pos = 0;
  const parseBlock = (nested: boolean): NginxDirective[] => {
    const directives: NginxDirective[] = [];
    let words: string[] = [];
    while (pos < tokens.length) {
      const token = tokens[pos++];
      if (token === ';') {
        if (words.length === 0) throw new Error('nginx: empty directive');
        directives.push({ name: words[0], args: words.slice(1) });
        words = [];
      } else if (token === '{') {
        if (words.length === 0) throw new Error('nginx: block without a name');
        directives.push({ name: words[0], args: words.slice(1), block: parseBlock(true) });
        words = [];
      } else if (token === '}') {
        if (!nested) throw new Error('nginx: unbalanced }');
        if (words.length) throw new Error(`nginx: directive "${words.join(' ')}" lacks ;`);
        return directives;
      } else {
        words.push(token);
      }
    }
    if (nested) throw new Error('nginx: missing }');
    if (words.length) throw new Error(`nginx: directive "${words.join(' ')}" lacks ;`);
    return directives;
  };
  return parseBlock(false);
}

export interface NginxLocation {
  modifier: '' | '=' | '^~' | '~' | '~*';
  pattern: string;
  /** The upstream or URL of its proxy_pass. */
  proxyPass?: string;
}

export function nginxLocations(server: NginxDirective): NginxLocation[] {
  return (server.block ?? [])
    .filter((d) => d.name === 'location')
    .map((d) => {
      const [first, second] = d.args;
      const hasModifier = d.args.length === 2;
      const modifier = (hasModifier ? first : '') as NginxLocation['modifier'];
      if (!['', '=', '^~', '~', '~*'].includes(modifier)) throw new Error(`nginx: unknown location modifier ${modifier}`);
      const proxy = d.block?.find((x) => x.name === 'proxy_pass');
      return { modifier, pattern: hasModifier ? second : first, proxyPass: proxy?.args[0] };
    });
}

/**
 * nginx's location selection (ngx_http_core_module, "location"): an exact
 * `=` match wins at once; otherwise the longest matching prefix is noted; if
 * it has `^~` it wins, else the regex locations are tried in file order and
 * the first match wins; with no regex match the longest prefix is used.
 */
export function resolveNginx(locations: NginxLocation[], path: string): NginxLocation | undefined {
  const exact = locations.find((l) => l.modifier === '=' && l.pattern === path);
  if (exact) return exact;
  let longest: NginxLocation | undefined;
  for (const l of locations) {
    if ((l.modifier === '' || l.modifier === '^~') && path.startsWith(l.pattern)) {
      if (!longest || l.pattern.length > longest.pattern.length) longest = l;
    }
  }
  if (longest?.modifier === '^~') return longest;
  for (const l of locations) {
    if (l.modifier === '~' && new RegExp(l.pattern).test(path)) return l;
    if (l.modifier === '~*' && new RegExp(l.pattern, 'i').test(path)) return l;
  }
  return longest;
}

/** Request paths to route: real endpoints from the spec, with the app the routing table in the brief gives them. */
export const EXPECTED_ROUTING: Array<[string, string]> = [
  ['/_matrix/client/v1/media/upload', 'media-repo'],
  ['/_matrix/client/v1/media/download/example.org/abcdef', 'media-repo'],
  ['/_matrix/client/v1/media/thumbnail/example.org/abcdef', 'media-repo'],
  ['/_matrix/media/v3/upload', 'media-repo'],
  ['/_matrix/media/r0/download/example.org/abcdef', 'media-repo'],
  ['/_matrix/federation/v1/media/download/abcdef', 'media-repo'],
  ['/_matrix/client/v3/keys/upload', 'key-server'],
  ['/_matrix/client/v3/keys/query', 'key-server'],
  ['/_matrix/client/r0/keys/claim', 'key-server'],
  ['/_matrix/client/unstable/keys/changes', 'key-server'],
  ['/_matrix/client/v3/keys/device_signing/upload', 'key-server'],
  ['/_matrix/client/v3/room_keys/version', 'key-server'],
  ['/_matrix/client/r0/room_keys/keys/!room:example.org', 'key-server'],
  ['/_matrix/client/unstable/room_keys/version/1', 'key-server'],
  ['/_matrix/key/v2/server', 'key-server'],
  ['/_matrix/key/v2/query', 'key-server'],
  ['/_matrix/federation/v1/user/keys/query', 'key-server'],
  ['/_matrix/federation/v1/user/keys/claim', 'key-server'],
  ['/_matrix/federation/v1/user/devices/%40alice%3Aexample.org', 'key-server'],
  ['/_matrix/federation/v1/send/1700000000000', 'federation-inbound'],
  ['/_matrix/federation/v1/version', 'federation-inbound'],
  ['/_matrix/federation/v2/send_join/!room:example.org/$event', 'federation-inbound'],
  ['/_matrix/federation/v1/query/profile', 'federation-inbound'],
  ['/_matrix/federation/v1/user/devicesx', 'federation-inbound'],
  ['/.well-known/matrix/server', 'federation-inbound'],
  ['/.well-known/matrix/client', 'client-api'],
  ['/_matrix/client/versions', 'client-api'],
  ['/_matrix/client/v3/sync', 'client-api'],
  ['/_matrix/client/v3/login', 'client-api'],
  ['/_matrix/client/v3/rooms/!room:example.org/send/m.room.message/txn1', 'client-api'],
  ['/_matrix/client/v3/room_keysx', 'client-api'],
  ['/_matrix/client/v3/user/@alice:example.org/filter', 'client-api'],
  ['/_matrix/client/v1/login/get_token', 'client-api'],
  ['/', 'client-api'],
  ['/health', 'client-api'],
];

/** Paths under every route of a table (so each route is exercised), plus the fixed list above. */
export function samplePaths(routes: Route[]): string[] {
  const generated = routes.flatMap((r) => (r.path.endsWith('/') ? [`${r.path}sample/path`] : [r.path, `${r.path}/sample`]));
  return [...new Set([...generated, ...EXPECTED_ROUTING.map(([p]) => p)])];
}
