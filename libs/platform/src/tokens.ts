/**
 * Nest injection tokens for the resources every service shares. Interfaces
 * (ports) have no runtime identity, so they are injected by these symbols.
 */
export const CONFIG = Symbol('atrium:config');
export const DOCUMENT_STORE = Symbol('atrium:document-store');
export const BUS = Symbol('atrium:bus');
export const CACHE = Symbol('atrium:cache');
export const TELEMETRY = Symbol('atrium:telemetry');
export const SIGNING_KEY = Symbol('atrium:signing-key');
export const ACCOUNT_STORE = Symbol('atrium:account-store');
export const RATE_LIMITER = Symbol('atrium:rate-limiter');
export const USER_INTERACTIVE_AUTH = Symbol('atrium:uia');
