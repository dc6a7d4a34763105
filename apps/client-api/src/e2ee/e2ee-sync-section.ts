import { Inject, Injectable } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import { E2eeService } from '@atrium/e2ee';
import { ACCOUNT_STORE, BUS, CONFIG, DOCUMENT_STORE } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';
import type { SyncSection, SyncSectionRequest, SyncSectionResult } from '../sync/sync-sections';

/**
 * The E2EE parts of /sync (modules/end_to_end_encryption.md "Extensions to
 * /sync"; sync.yaml): `device_lists` (`changed`: users sharing a room whose
 * device list changed, or who newly share one; `left`: users who no longer
 * share any room), only on incremental syncs as the spec describes them as
 * changes since `since`; `device_one_time_keys_count` and
 * `device_unused_fallback_key_types` of the requesting device, in every
 * response so a client can keep its one-time keys topped up.
 * The keys are owned by key-server; this section reads them through @atrium/e2ee.
 */
@Injectable()
export class E2eeSyncSection implements SyncSection {
  readonly stream = 'device_lists' as const;

  constructor(
    @Inject(DOCUMENT_STORE) private readonly documents: DocumentStore,
    @Inject(BUS) private readonly bus: Bus,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {}

  private service(): Promise<E2eeService> {
    return E2eeService.shared(this.documents, this.bus, this.accounts, this.config.server_name);
  }

  async currentPosition(): Promise<number> {
    return (await this.service()).store.safePosition();
  }

  async build(request: SyncSectionRequest): Promise<SyncSectionResult> {
    const service = await this.service();
    const top: Record<string, unknown> = {
      device_one_time_keys_count: await service.store.oneTimeKeyCounts(request.userId, request.deviceId),
      device_unused_fallback_key_types: await service.store.unusedFallbackKeyTypes(request.userId, request.deviceId),
    };
    if (request.initial) return { top, hasUpdates: false };
    const delta = await service.deviceListDelta(
      request.userId,
      { events: request.from.events, deviceLists: request.from.device_lists },
      { events: request.to.events, deviceLists: request.to.device_lists },
    );
    const hasUpdates = delta.changed.length > 0 || delta.left.length > 0;
    if (hasUpdates) top.device_lists = delta;
    return { top, hasUpdates };
  }
}
