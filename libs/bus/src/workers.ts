/**
 * The stream workers of a bus, as both adapters run them: consume() starts a
 * loop that takes one message at a time until it is told to stop, and a
 * stop (unsubscribe, or close for all of them) returns only once the loop has
 * ended, so no handler is running then and none will run again.
 */

export interface StreamWorker {
  /** Set by stop; the loop checks it before each message. */
  stopped: boolean;
  /** Settles when the loop has returned. */
  done: Promise<void>;
  /** Set by the loop while it waits idle; ends the wait early. */
  wake?: () => void;
}

export class StreamWorkers {
  private readonly running = new Set<StreamWorker>();

  /** Starts `run` as a new worker's loop. */
  start(run: (worker: StreamWorker) => Promise<void>): StreamWorker {
    const worker: StreamWorker = { stopped: false, done: Promise.resolve() };
    worker.done = run(worker);
    this.running.add(worker);
    return worker;
  }

  /** Stops one worker and waits for its loop to end. */
  async stop(worker: StreamWorker): Promise<void> {
    worker.stopped = true;
    worker.wake?.();
    await worker.done;
    this.running.delete(worker);
  }

  /** Stops every worker at once and waits for all their loops to end. */
  async stopAll(): Promise<void> {
    const workers = [...this.running];
    for (const worker of workers) {
      worker.stopped = true;
      worker.wake?.();
    }
    await Promise.all(workers.map((w) => w.done));
    for (const worker of workers) this.running.delete(worker);
  }
}
