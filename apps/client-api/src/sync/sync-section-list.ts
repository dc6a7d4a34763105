/**
 * The /sync sections registered in this service (see sync-sections.ts). A
 * module adding a section appends its class here and nowhere else: the
 * client-api module provides each class and collects them under SYNC_SECTIONS.
 */
import type { SyncSection } from './sync-sections';
import { EphemeralSyncSection, ReceiptsStreamSection } from '../ephemeral/ephemeral-sync-sections';
import { UnreadNotificationsSyncSection } from '../push/push-sync-section';
import { E2eeSyncSection } from '../e2ee/e2ee-sync-section';
import { AccountDataSyncSection, PresenceSyncSection, ToDeviceSyncSection } from '../user/user-sync-sections';

export const SYNC_SECTION_CLASSES: Array<new (...args: never[]) => SyncSection> = [AccountDataSyncSection, PresenceSyncSection, ToDeviceSyncSection, ReceiptsStreamSection, EphemeralSyncSection, UnreadNotificationsSyncSection, E2eeSyncSection];
