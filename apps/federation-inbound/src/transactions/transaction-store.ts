import type { Collection, Doc, DocumentStore } from '@atrium/storage';

/** One processed /send transaction: its answer, so a retransmission gets it again. */
export interface InboundTxnRecord extends Doc {
  _id: string; // origin \n txnId
  origin: string;
  txn_id: string;
  /** The response body as JSON text. */
  response: string;
  created_ts: number;
}

/**
 * Transactions already processed, by (origin, txnId): server-server-api
 * "Transactions" and transactions.yaml (a sender retries the same txnId
 * until it gets a 200), ARCHITECTURE.md "Data flow" ("drops a repeated
 * transaction"). Recorded after processing: a transaction cut short by a
 * crash is processed again on retry, which is safe because every PDU is
 * idempotent on its event ID (rule 3).
 */
/** How long an answer is kept: a sender retries a transaction within minutes, not days (Synapse keeps a day too). */
export const INBOUND_TXN_KEEP_MS = 24 * 3600_000;
/** Old answers are pruned once every this many new ones (no TTL indexes: ARCHITECTURE.md "Storage"). */
const PRUNE_EVERY = 500;

export class InboundTransactionStore {
  private puts = 0;

  private constructor(
    private readonly txns: Collection<InboundTxnRecord>,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<InboundTransactionStore> {
    return new InboundTransactionStore(await store.collection<InboundTxnRecord>({ name: 'federation_inbound_txns', indexes: [{ fields: ['created_ts'] }] }), now);
  }

  private static id(origin: string, txnId: string): string {
    return `${origin}\n${txnId}`;
  }

  async get(origin: string, txnId: string): Promise<unknown> {
    const record = await this.txns.get(InboundTransactionStore.id(origin, txnId));
    return record ? (JSON.parse(record.response) as unknown) : undefined;
  }

  /** Records the answer (the first answer stays if two processed it at once). */
  async put(origin: string, txnId: string, response: unknown): Promise<void> {
    await this.txns.insert({ _id: InboundTransactionStore.id(origin, txnId), origin, txn_id: txnId, response: JSON.stringify(response), created_ts: this.now() });
    if (++this.puts % PRUNE_EVERY === 0) await this.prune();
  }

  /** Forgets answers older than INBOUND_TXN_KEEP_MS; returns how many. */
  prune(): Promise<number> {
    return this.txns.deleteMany({ created_ts: { $lt: this.now() - INBOUND_TXN_KEEP_MS } });
  }
}
