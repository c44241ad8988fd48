// Preferences in ESP-IDF NVS through Moddable's `preference` module
// (modules/files/preference/esp32/modPreference.c): NVS namespaces and keys are at most 15 bytes.
import Preference from 'preference';
import type { PreferenceValue, Preferences } from '../preferences';

const NVS_NAME_MAX = 15;

function checkName(kind: string, name: string): void {
  if (name.length === 0 || name.length > NVS_NAME_MAX) {
    throw new RangeError(`preference ${kind} "${name}" must be 1..${NVS_NAME_MAX} characters`);
  }
}

export class ModdablePreferences implements Preferences {
  get(domain: string, key: string): PreferenceValue | undefined {
    checkName('domain', domain);
    checkName('key', key);
    return Preference.get(domain, key);
  }

  set(domain: string, key: string, value: PreferenceValue): void {
    checkName('domain', domain);
    checkName('key', key);
    // modPreference.c stores numbers with nvs_set_i32 and rejects fractions: say so before NVS does.
    if (typeof value === 'number' && (value | 0) !== value) {
      throw new RangeError(`preference ${domain}/${key}: ${value} is not a 32-bit integer`);
    }
    Preference.set(domain, key, value);
  }

  delete(domain: string, key: string): void {
    checkName('domain', domain);
    checkName('key', key);
    Preference.delete(domain, key);
  }

  keys(domain: string): string[] {
    checkName('domain', domain);
    return Preference.keys(domain);
  }
}
