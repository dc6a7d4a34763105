import type { DocumentStore } from './port';

/**
 * Something opened once per DocumentStore and shared by every caller (the
 * stores a process's endpoints, /sync sections and consumers all use). A
 * failed open is not kept: the next caller tries again.
 */
export class SharedPerStore<T> {
  private readonly opened = new WeakMap<DocumentStore, Promise<T>>();

  /** The value opened for `store`, opening it with `open` on first use. */
  get(store: DocumentStore, open: () => Promise<T>): Promise<T> {
    let value = this.opened.get(store);
    if (!value) {
      value = open();
      this.opened.set(store, value);
      value.catch(() => this.opened.delete(store));
    }
    return value;
  }
}
