// Small key-value settings that survive a restart (Moddable `preference`, ESP-IDF NVS underneath).

export type PreferenceValue = string | number | boolean | ArrayBuffer;

export interface Preferences {
  get(domain: string, key: string): PreferenceValue | undefined;
  set(domain: string, key: string, value: PreferenceValue): void;
  delete(domain: string, key: string): void;
  keys(domain: string): string[];
}
