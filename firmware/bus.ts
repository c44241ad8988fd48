// The meter's event bus: units publish what happened and subscribe to what concerns them, so no
// unit reaches into another's state. Delivery is synchronous and in subscription order; a failing
// subscriber is reported on 'fault' and does not stop the others.

export interface Subscription {
  cancel(): void;
}

type Handler<T> = (payload: T) => void;

export class EventBus<Events extends { fault: { unit: string; error: unknown } }> {
  readonly #handlers = new Map<keyof Events, Handler<never>[]>();

  on<K extends keyof Events>(event: K, handler: Handler<Events[K]>): Subscription {
    const list = this.#handlers.get(event) ?? [];
    list.push(handler as Handler<never>);
    this.#handlers.set(event, list);
    return {
      cancel: () => {
        const current = this.#handlers.get(event) ?? [];
        this.#handlers.set(
          event,
          current.filter((h) => h !== handler),
        );
      },
    };
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    for (const handler of this.#handlers.get(event) ?? []) {
      try {
        (handler as Handler<Events[K]>)(payload);
      } catch (error) {
        if (event === 'fault') throw error;
        this.emit('fault', { unit: String(event), error } as Events['fault']);
      }
    }
  }
}
