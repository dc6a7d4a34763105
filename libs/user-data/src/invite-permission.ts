/**
 * "Invite permission" (client-server-api modules/invite_permission.md, v1.18):
 * a user who sets `m.invite_permission_config` global account data with
 * `default_action: "block"` receives no invites. Their homeserver refuses
 * invites to them with 403 M_INVITE_BLOCKED (client invite endpoints,
 * createRoom, federation /invite) and leaves the invites it already holds
 * out of /sync.
 */
import type { AccountDataStore } from './account-data-store';

export const INVITE_PERMISSION_CONFIG = 'm.invite_permission_config';
export const INVITE_BLOCKED = 'M_INVITE_BLOCKED';

/** "A missing, invalid or unsupported value means that the user wants to receive invites as normal." */
export function blocksInvites(content: Record<string, unknown> | null): boolean {
  return content?.['default_action'] === 'block';
}

/** Whether a local user blocks invites, from their stored account data. */
export async function invitesBlockedBy(accountData: AccountDataStore, userId: string): Promise<boolean> {
  return blocksInvites(await accountData.get(userId, null, INVITE_PERMISSION_CONFIG));
}
