/**
 * The Atrium configuration: one YAML file (see config/atrium.sample.yaml for
 * every key, documented) plus environment overrides. Every key has a default
 * so that the embedded mode starts with nothing but a server name.
 */

export type RegistrationMode = 'open' | 'token' | 'closed';

export interface ListenerConfig {
  host: string;
  port: number;
}

export interface FederationListenerConfig extends ListenerConfig {
  /** PEM files; without them the federation listener speaks plain HTTP (tests, or TLS terminated by a proxy). */
  tls_certificate_path?: string;
  tls_private_key_path?: string;
}

export interface RateLimitConfig {
  /** Sustained requests per second allowed per client address (or per user). */
  per_second: number;
  /** Requests allowed in a burst before the rate applies. */
  burst: number;
}

/** A notary this server asks for other servers' keys (server-server-api "Querying Keys Through Another Server"). */
export interface TrustedKeyServer {
  server_name: string;
  /**
   * Key ID → public key (unpadded Base64) the notary's answers must be signed
   * with. Absent: the notary's own keys are fetched from it directly
   * (trust on first use), as Synapse does.
   */
  verify_keys?: Record<string, string>;
}

/**
 * Outgoing federation (docs/federation-design.md "Configuration"). Outgoing
 * requests always use TLS; the certificate must be valid for the name the
 * spec's resolution step names.
 */
export interface FederationConfig {
  /** Extra PEM files of CAs trusted for outgoing TLS, added to Node's default roots (a test CA, a private PKI). */
  trusted_ca_paths: string[];
  /**
   * CIDR ranges never connected to, checked on the address actually
   * connected to after DNS (so a public name resolving to 10.0.0.1 is
   * refused too). Protects the internal network from server-side request
   * forgery through server names.
   */
  ip_range_blocklist: string[];
  /** CIDR ranges allowed even though the blocklist covers them (tests on loopback: 127.0.0.1/32, ::1/128). */
  ip_range_allowlist: string[];
  /** Notaries for remote server keys; empty: keys are fetched from each server directly. */
  trusted_key_servers: TrustedKeyServer[];
}

/**
 * The default blocklist: loopback, RFC 1918 private, CGNAT (RFC 6598),
 * link-local, "this network", IPv6 loopback, unspecified, link-local and
 * unique-local (ULA) ranges.
 */
export const DEFAULT_IP_RANGE_BLOCKLIST: readonly string[] = [
  '127.0.0.0/8',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '169.254.0.0/16',
  '0.0.0.0/8',
  '::1/128',
  '::/128',
  'fe80::/10',
  'fc00::/7',
];

/** One thumbnail size the media repository generates (client-server-api "Thumbnails"). */
export interface ThumbnailSize {
  width: number;
  height: number;
  method: 'crop' | 'scale';
}

/** The media repository (client-server-api "Content repository"; apps/media-repo). */
export interface MediaConfig {
  /**
   * Folder of the uploaded files and thumbnails; empty: `<data_dir>/media`. In cluster mode every
   * media-repo replica must see the same folder (a ReadWriteMany volume:
   * deploy/k8s/media-pvc.yaml); see apps/media-repo/README.md for why.
   */
  store_path: string;
  /** Largest upload accepted, bytes (413 M_TOO_LARGE above); also the largest remote file fetched. */
  max_upload_size: number;
  /** How long a media ID from POST /_matrix/media/v1/create waits for its upload, ms (the spec recommends 24 hours). */
  unused_expires_after_ms: number;
  /** Created but not yet uploaded media IDs one user may hold at once (429 M_LIMIT_EXCEEDED above). */
  max_pending_uploads: number;
  /** Images with more pixels than this are not thumbnailed (413 M_TOO_LARGE), to bound decoder memory. */
  max_thumbnail_pixels: number;
  /** The sizes thumbnails are made in; a request gets the smallest one at least as large as asked. */
  thumbnail_sizes: ThumbnailSize[];
  /** Whether GET /media/preview_url fetches pages (it obeys federation.ip_range_blocklist). */
  url_preview_enabled: boolean;
  /**
   * The "freeze" of the deprecated unauthenticated downloads (client-server-api
   * "Content repository", v1.11): media stored at or after this time (ms since
   * the epoch; remote media: when it was cached) is not served by
   * /_matrix/media/v3/download and /thumbnail (404), only by the authenticated
   * /_matrix/client/v1/media ones. 0: no freeze.
   */
  unauthenticated_freeze_ts: number;
}

export interface AtriumConfig {
  /** The server name that appears in user IDs (`@alice:<server_name>`). Cannot change once users exist. */
  server_name: string;
  /** Where clients reach this server; advertised in /.well-known/matrix/client. */
  public_baseurl: string;
  /** Folder for the SQLite database, the signing key and media in embedded mode. */
  data_dir: string;
  /** File holding the Ed25519 signing key, Synapse's format: `ed25519 <version> <unpadded base64 seed>`. */
  signing_key_path: string;
  /** Older keys published as `old_verify_keys` after a rotation: key ID → { key (public, base64), expired_ts }. */
  old_signing_keys: Record<string, { key: string; expired_ts: number }>;
  /** How long our published server keys are valid for, in ms (the spec suggests not much more than a week). */
  key_validity_ms: number;
  storage: { url: string };
  bus: { url: string };
  cache: { url: string };
  listeners: {
    client: ListenerConfig;
    federation: FederationListenerConfig;
    /** Cluster mode: the port a single service process serves on. */
    service: ListenerConfig;
  };
  registration: {
    mode: RegistrationMode;
    /** Tokens accepted by m.login.registration_token when mode is `token` (or `open`). */
    tokens: string[];
    /** Allow `kind=guest` registration. */
    allow_guests: boolean;
    /** Shared secret for the admin registration command/API; unset disables it. */
    shared_secret?: string;
  };
  auth: {
    /** Lifetime of access tokens issued with a refresh token (clients that send refresh_token: true). */
    access_token_lifetime_ms: number;
    /** Minimum password length; 0 disables the check. */
    password_min_length: number;
  };
  rate_limits: {
    login: RateLimitConfig;
    register: RateLimitConfig;
    /** Per user: media uploads and created media IDs (client-server-api content-repo.yaml, 429 on upload and /create). */
    media_upload: RateLimitConfig;
    /** Set false to disable rate limiting entirely (tests, benchmarks). */
    enabled: boolean;
  };
  telemetry: {
    /** OTLP/HTTP endpoint (e.g. http://otel-collector:4318); OTEL_EXPORTER_OTLP_ENDPOINT also works. */
    otlp_endpoint?: string;
    log_level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  };
  rooms: {
    /** Version for new rooms; the spec recommends 12. */
    default_version: string;
  };
  well_known: {
    /** Delegated federation target for /.well-known/matrix/server (host:port); unset serves none (404). */
    server?: string;
  };
  /**
   * TURN for VoIP (GET /voip/turnServer). Credentials follow the TURN REST
   * API convention (coturn `use-auth-secret`): username `<expiry>:<user ID>`,
   * password base64(HMAC-SHA1(shared secret, username)). No URIs: no TURN.
   */
  voip: {
    turn_uris: string[];
    /** Shared with the TURN server (coturn `static-auth-secret`); empty: no TURN. */
    turn_shared_secret: string;
    /** Lifetime of the credentials handed out, in ms. */
    turn_user_lifetime_ms: number;
    /** Whether guests may have TURN credentials. */
    turn_allow_guests: boolean;
  };
  /**
   * Served at /.well-known/matrix/support (support.yaml): how to reach the
   * administrators (`{ role, matrix_id?, email_address? }` each) and a help
   * page. Neither set: 404, "No server support information available".
   */
  support: {
    contacts: Array<{ role: string; matrix_id?: string; email_address?: string }>;
    support_page: string;
  };
  federation: FederationConfig;
  media: MediaConfig;
}

export function defaultConfig(serverName: string, dataDir = './data'): AtriumConfig {
  return {
    server_name: serverName,
    public_baseurl: `http://${serverName.includes(':') ? serverName : `${serverName}:8008`}/`,
    data_dir: dataDir,
    signing_key_path: `${dataDir}/signing.key`,
    old_signing_keys: {},
    key_validity_ms: 7 * 24 * 3600 * 1000,
    storage: { url: `sqlite:${dataDir}/atrium.db` },
    bus: { url: 'inprocess:' },
    cache: { url: 'memory:' },
    listeners: {
      client: { host: '0.0.0.0', port: 8008 },
      federation: { host: '0.0.0.0', port: 8448 },
      service: { host: '0.0.0.0', port: 8080 },
    },
    registration: { mode: 'closed', tokens: [], allow_guests: false },
    auth: { access_token_lifetime_ms: 5 * 60 * 1000, password_min_length: 0 },
    rate_limits: {
      enabled: true,
      login: { per_second: 0.2, burst: 5 },
      register: { per_second: 0.2, burst: 5 },
      media_upload: { per_second: 1, burst: 50 },
    },
    telemetry: { log_level: 'info' },
    rooms: { default_version: '12' },
    well_known: {},
    voip: { turn_uris: [], turn_shared_secret: '', turn_user_lifetime_ms: 24 * 3600 * 1000, turn_allow_guests: true },
    support: { contacts: [], support_page: '' },
    federation: { trusted_ca_paths: [], ip_range_blocklist: [...DEFAULT_IP_RANGE_BLOCKLIST], ip_range_allowlist: [], trusted_key_servers: [] },
    media: {
      store_path: '',
      max_upload_size: 50 * 1024 * 1024,
      unused_expires_after_ms: 24 * 3600 * 1000,
      max_pending_uploads: 10,
      max_thumbnail_pixels: 40_000_000,
      // The sizes client-server-api "Thumbnails" says servers SHOULD produce.
      thumbnail_sizes: [
        { width: 32, height: 32, method: 'crop' },
        { width: 96, height: 96, method: 'crop' },
        { width: 320, height: 240, method: 'scale' },
        { width: 640, height: 480, method: 'scale' },
        { width: 800, height: 600, method: 'scale' },
      ],
      url_preview_enabled: true,
      unauthenticated_freeze_ts: 0,
    },
  };
}
