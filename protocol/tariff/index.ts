// The tariff engine, shared by the meter (charging unit 43) and the platform.
export {
  MAX_HISTORY,
  MAX_PURCHASE_MINUTES,
  Tariff,
  type AmountRequest,
  type DurationRequest,
} from './engine';
export { type FlatRate, flatTariff } from './flat';
export * from './messages';
export * from './types';
export { dayLength, formatLocal, parseInstant, parseTimeZone, type TimeZone, TimeZoneError } from './tz';
export { TariffError, validateTariff } from './validate';
