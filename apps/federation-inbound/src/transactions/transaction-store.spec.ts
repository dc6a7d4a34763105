import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { INBOUND_TXN_KEEP_MS, InboundTransactionStore } from './transaction-store';

describe('InboundTransactionStore (SQLite)', () => {
  let store: DocumentStore;
  let now = 1_000_000_000;
  let txns: InboundTransactionStore;

  beforeEach(async () => {
    store = await openDocumentStore('sqlite::memory:');
    txns = await InboundTransactionStore.open(store, () => now);
  });
  afterEach(() => store.close());

  it('answers a recorded transaction by (origin, txnId), keeps the first answer, and prunes old ones', async () => {
    expect(await txns.get('a.test', 't1')).toBeUndefined();
    await txns.put('a.test', 't1', { pdus: { $x: {} } });
    await txns.put('a.test', 't1', { pdus: { $y: {} } });
    expect(await txns.get('a.test', 't1')).toEqual({ pdus: { $x: {} } });
    // The same txnId from another origin is another transaction.
    expect(await txns.get('b.test', 't1')).toBeUndefined();
    now += INBOUND_TXN_KEEP_MS + 1;
    await txns.put('a.test', 't2', { pdus: {} });
    expect(await txns.prune()).toBe(1);
    expect(await txns.get('a.test', 't1')).toBeUndefined();
    expect(await txns.get('a.test', 't2')).toEqual({ pdus: {} });
  });
});
