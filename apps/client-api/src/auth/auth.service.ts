import { Inject, Injectable } from '@nestjs/common';
import { hashPassword, verifyPassword, generateDeviceId, type AccountStore, type IssuedTokens } from '@atrium/accounts';
import type { AtriumConfig } from '@atrium/config';
import type { DocumentStore } from '@atrium/storage';
import {
  Errors,
  MatrixError,
  optionalBoolean,
  optionalString,
  requireString,
  type RateLimiter,
  type Requester,
  type UiaFlow,
  type UserInteractiveAuth,
} from '@atrium/http';
import { ACCOUNT_STORE, CONFIG, DOCUMENT_STORE, RATE_LIMITER, USER_INTERACTIVE_AUTH } from '@atrium/platform';
import { loginUser } from './login-identifier';
import { checkNewLocalpart, qualifyUserId, userIdFromLogin } from './user-ids';

export interface LoginResponse {
  user_id: string;
  access_token: string;
  device_id: string;
  home_server: string;
  refresh_token?: string;
  expires_in_ms?: number;
  well_known: { 'm.homeserver': { base_url: string } };
}

export interface RegisterResponse {
  user_id: string;
  access_token?: string;
  device_id?: string;
  refresh_token?: string;
  expires_in_ms?: number;
}

/**
 * Login, registration and password checks. Spec: client-server-api "Login",
 * "Account registration", "User-Interactive Authentication API",
 * "Token-authenticated registration", "Password-based".
 */
@Injectable()
export class AuthService {
  constructor(
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(DOCUMENT_STORE) private readonly store: DocumentStore,
    @Inject(RATE_LIMITER) private readonly rateLimiter: RateLimiter,
    @Inject(USER_INTERACTIVE_AUTH) private readonly uia: UserInteractiveAuth,
  ) {}

  /** GET /login */
  loginFlows(): { flows: Array<{ type: string }> } {
    return { flows: [{ type: 'm.login.password' }] };
  }

  /** POST /login with m.login.password. */
  async login(body: Record<string, unknown>, clientIp: string): Promise<LoginResponse> {
    await this.rateLimiter.check('login', clientIp, this.config.rate_limits.login);
    const type = requireString(body, 'type');
    if (type !== 'm.login.password') {
      throw new MatrixError(400, 'M_UNKNOWN', `Unsupported login type ${type}`);
    }
    const password = requireString(body, 'password');
    const userId = await this.checkPassword(loginUser(body), password);
    const deviceId = optionalString(body, 'device_id') ?? generateDeviceId();
    await this.accounts.ensureDevice(userId, deviceId, optionalString(body, 'initial_device_display_name') ?? null, clientIp);
    const tokens = await this.issue(userId, deviceId, false, optionalBoolean(body, 'refresh_token') === true);
    return {
      user_id: userId,
      device_id: deviceId,
      home_server: this.config.server_name,
      ...tokens,
      well_known: { 'm.homeserver': { base_url: this.config.public_baseurl } },
    };
  }

  /**
   * Checks a user's password; returns the user ID. The same answer (M_FORBIDDEN)
   * for an unknown user and a wrong password, so logins cannot probe for users.
   */
  async checkPassword(user: string, password: string): Promise<string> {
    const userId = userIdFromLogin(user, this.config.server_name);
    const record = userId ? await this.accounts.getUser(userId) : null;
    if (!record || !record.password_hash || !(await verifyPassword(password, record.password_hash))) {
      if (record?.deactivated) throw Errors.userDeactivated();
      throw Errors.forbidden('Invalid username or password');
    }
    if (record.deactivated) throw Errors.userDeactivated();
    return record._id;
  }

  /** The UIA stage verifier for m.login.password, bound to the requesting user. */
  passwordStage(requester: Requester) {
    return async (auth: Record<string, unknown>): Promise<string> => {
      const userId = await this.checkPassword(loginUser(auth), requireString(auth, 'password'));
      if (userId !== requester.userId) throw Errors.forbidden('You can only authenticate as yourself');
      return userId;
    };
  }

  /** Flows offered to sensitive account operations (password change, device deletion, deactivation). */
  readonly passwordFlows: UiaFlow[] = [{ stages: ['m.login.password'] }];

  /** POST /register */
  async register(body: Record<string, unknown>, kind: string, clientIp: string): Promise<RegisterResponse> {
    await this.rateLimiter.check('register', clientIp, this.config.rate_limits.register);
    if (kind === 'guest') return this.registerGuest(body, clientIp);
    if (kind !== 'user') throw Errors.invalidParam('kind must be "user" or "guest"');
    if (this.config.registration.mode === 'closed') throw Errors.forbidden('Registration is disabled on this server');

    // Check the username and password before UIA so that a client learns of a
    // taken or invalid name before the user completes any stage.
    const username = optionalString(body, 'username');
    if (username !== undefined) await this.checkAvailable(username);
    const password = optionalString(body, 'password');
    if (password !== undefined) this.checkPasswordStrength(password);
    const refresh = optionalBoolean(body, 'refresh_token') === true;
    const inhibitLogin = optionalBoolean(body, 'inhibit_login') === true;
    const deviceId = optionalString(body, 'device_id');
    const displayName = optionalString(body, 'initial_device_display_name');

    await this.uia.check({
      auth: body.auth,
      flows: this.registrationFlows(),
      operation: 'register',
      verifiers: {
        'm.login.dummy': async () => undefined,
        'm.login.registration_token': async (auth) => {
          const token = requireString(auth, 'token');
          if (!this.isValidRegistrationToken(token)) throw new MatrixError(401, 'M_FORBIDDEN', 'Invalid registration token');
        },
      },
    });

    const localpart = username ?? (await this.generateLocalpart());
    const userId = qualifyUserId(localpart, this.config.server_name);
    const created = await this.accounts.createUser({
      userId,
      localpart,
      passwordHash: password !== undefined ? await hashPassword(password) : null,
    });
    if (!created) throw Errors.userInUse();
    if (inhibitLogin) return { user_id: userId };
    const device = deviceId ?? generateDeviceId();
    await this.accounts.ensureDevice(userId, device, displayName ?? null, clientIp);
    return { user_id: userId, device_id: device, ...(await this.issue(userId, device, false, refresh)) };
  }

  /**
   * "When registering a guest account, all parameters in the request body with
   * the exception of initial_device_display_name MUST BE ignored by the server.
   * The server MUST pick a device_id for the account regardless of input."
   */
  private async registerGuest(body: Record<string, unknown>, clientIp: string): Promise<RegisterResponse> {
    if (!this.config.registration.allow_guests) throw Errors.forbidden('Guest access is disabled on this server');
    const localpart = String(await this.store.nextSequence('guest_user_id'));
    const userId = qualifyUserId(localpart, this.config.server_name);
    if (!(await this.accounts.createUser({ userId, localpart, passwordHash: null, isGuest: true }))) throw Errors.userInUse();
    const deviceId = generateDeviceId();
    await this.accounts.ensureDevice(userId, deviceId, optionalString(body, 'initial_device_display_name') ?? null, clientIp);
    return { user_id: userId, device_id: deviceId, ...(await this.issue(userId, deviceId, true, false)) };
  }

  /** GET /register/available: true, or M_INVALID_USERNAME / M_USER_IN_USE. */
  async checkAvailable(username: string): Promise<void> {
    checkNewLocalpart(username, this.config.server_name);
    // Purely numeric localparts are reserved for guests (their IDs are a counter).
    if (/^[0-9]+$/.test(username)) throw Errors.invalidUsername('Numeric usernames are reserved');
    if (await this.accounts.getUser(qualifyUserId(username, this.config.server_name))) throw Errors.userInUse();
  }

  checkPasswordStrength(password: string): void {
    const min = this.config.auth.password_min_length;
    if (min > 0 && password.length < min) throw Errors.weakPassword(`Password must be at least ${min} characters`);
  }

  registrationFlows(): UiaFlow[] {
    const { mode, tokens } = this.config.registration;
    if (mode === 'token') return [{ stages: ['m.login.registration_token'] }];
    const flows: UiaFlow[] = [{ stages: ['m.login.dummy'] }];
    if (tokens.length > 0) flows.push({ stages: ['m.login.registration_token'] });
    return flows;
  }

  /** Whether registration tokens are in use at all (the validity endpoint answers 403 otherwise). */
  registrationTokensEnabled(): boolean {
    return this.config.registration.mode !== 'closed' && this.config.registration.tokens.length > 0;
  }

  isValidRegistrationToken(token: string): boolean {
    return this.config.registration.tokens.includes(token);
  }

  private async generateLocalpart(): Promise<string> {
    // Counter-based like guests but prefixed, so it never collides with a numeric guest ID.
    for (let attempt = 0; attempt < 5; attempt++) {
      const localpart = `user${await this.store.nextSequence('generated_user_id')}`;
      if (!(await this.accounts.getUser(qualifyUserId(localpart, this.config.server_name)))) return localpart;
    }
    throw Errors.unknown('Could not generate a user ID');
  }

  async issue(userId: string, deviceId: string, isGuest: boolean, withRefresh: boolean): Promise<IssuedTokens> {
    return this.accounts.issueTokens(userId, deviceId, {
      isGuest,
      withRefresh,
      lifetimeMs: this.config.auth.access_token_lifetime_ms,
    });
  }

  refresh(refreshToken: string): Promise<IssuedTokens> {
    return this.accounts.refresh(refreshToken, this.config.auth.access_token_lifetime_ms);
  }
}
