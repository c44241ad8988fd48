// Key-value preferences in memory; `entries` can be carried across a virtual power cycle.
import type { PreferenceValue, Preferences } from '../preferences';

export class MemoryPreferences implements Preferences {
  readonly entries: Map<string, PreferenceValue>;

  constructor(entries: Map<string, PreferenceValue> = new Map()) {
    this.entries = entries;
  }

  get(domain: string, key: string): PreferenceValue | undefined {
    const value = this.entries.get(`${domain}.${key}`);
    return value instanceof ArrayBuffer ? value.slice(0) : value;
  }

  set(domain: string, key: string, value: PreferenceValue): void {
    // NVS keys are at most 15 characters (ESP-IDF nvs.h NVS_KEY_NAME_MAX_SIZE - 1).
    if (key.length > 15 || domain.length > 15)
      throw new RangeError(`preference name too long: ${domain}.${key}`);
    this.entries.set(`${domain}.${key}`, value instanceof ArrayBuffer ? value.slice(0) : value);
  }

  delete(domain: string, key: string): void {
    this.entries.delete(`${domain}.${key}`);
  }

  keys(domain: string): string[] {
    const prefix = `${domain}.`;
    return [...this.entries.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }
}
