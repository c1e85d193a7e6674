/**
 * Promises that settle on a state change: `until(done)` resolves when `done(state)` returns true
 * for a state passed to `notify`, and rejects when `done` throws. Owners of XState actors use it
 * to turn "wait until connected (or failed)" into a promise.
 */
export class StateWaiters<S> {
  readonly #waiters = new Set<(state: S) => void>();

  /**
   * Waits for `done` to accept a later state; with `current`, that state is tried first. An
   * event sent from inside a transition is queued by XState, so after sending one only the
   * states that follow count: leave `current` out then.
   */
  until(done: (state: S) => boolean, current?: { state: S }): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiter = (state: S) => {
        try {
          if (!done(state)) return;
          this.#waiters.delete(waiter);
          resolve();
        } catch (error) {
          this.#waiters.delete(waiter);
          reject(error);
        }
      };
      this.#waiters.add(waiter);
      if (current) waiter(current.state);
    });
  }

  notify(state: S): void {
    for (const waiter of this.#waiters) waiter(state);
  }
}
