import type { Bus } from '@atrium/bus';
import { BUS, DOCUMENT_STORE } from '@atrium/platform';
import { PushStores } from '@atrium/push';
import type { DocumentStore } from '@atrium/storage';
import { MatrixError } from '@atrium/http';
import { PushRuleError } from '@atrium/matrix';

/** PushStores over the platform's document store (the same instances the push gateway uses in the embedded mode). */
export const PUSH_STORES_PROVIDER = {
  provide: PushStores,
  useFactory: (store: DocumentStore, bus: Bus) => PushStores.shared(store, bus),
  inject: [DOCUMENT_STORE, BUS],
};

/** Runs a push rules read or edit, turning the pure code's refusals into Matrix errors. */
export async function asMatrixError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PushRuleError) throw new MatrixError(err.status, err.errcode, err.message);
    throw err;
  }
}
