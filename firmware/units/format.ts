// Text for a 20-column character display (HD44780 ROM A00 has no £ or €: alphabetic codes are used).

const CURRENCY_CODES: Readonly<Record<number, string>> = Object.freeze({
  826: 'GBP',
  978: 'EUR',
  840: 'USD',
});

export function formatMoney(minor: number, currency: number): string {
  const sign = minor < 0 ? '-' : '';
  const abs = Math.abs(minor);
  const cents = String(abs % 100).padStart(2, '0');
  return `${CURRENCY_CODES[currency] ?? String(currency)} ${sign}${Math.floor(abs / 100)}.${cents}`;
}

/** HH:MM of an epoch-seconds time at a fixed offset from UTC. */
export function formatClock(epochSeconds: number, utcOffsetMinutes: number): string {
  const minutesOfDay = Math.floor((epochSeconds + utcOffsetMinutes * 60) / 60) % 1440;
  const m = (minutesOfDay + 1440) % 1440;
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

export function formatDuration(seconds: number): string {
  const minutes = Math.ceil(seconds / 60);
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}`;
}
