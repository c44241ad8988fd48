// The history rules' scenario priced both under XS (tariffHistory.entry.ts) and under Node
// (tariffHistory.test.ts): a payer's day under a cap per period, a no-return refusal, an evening
// ticket valid until a time, and PurchaseHistory rebuilt with its bounds. Firmware-side code only.
import { PurchaseHistory } from '../../firmware/units/purchaseHistory';
import {
  type PriorPurchase,
  type Quote,
  Tariff,
  type TariffDocument,
  validateTariff,
} from '../../protocol/tariff';

const EVERY = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

const DOC: TariffDocument = {
  id: 'xs-history',
  version: 1,
  currency: 826,
  timeZone: 'GMT0BST,M3.5.0/1,M10.5.0',
  rates: {
    day: [
      { upTo: 60, flat: 150 },
      { price: 50, per: 15 },
    ],
    evening: [{ flat: 300, validUntil: '07:00' }],
  },
  timetable: [
    { days: [...EVERY], from: '07:00', to: '18:00', mode: 'charged', rate: 'day' },
    { days: [...EVERY], from: '18:00', to: '07:00', mode: 'charged', rate: 'evening' },
  ],
  maxPrice: { amount: 800, resetAt: '02:00' },
  noReturnMinutes: 60,
};

/** What a quote says, in a form both engines can compare. */
function brief(q: Quote): unknown {
  return q.ok
    ? {
        amount: q.amount,
        paidUntil: q.paidUntil,
        minutes: q.minutes,
        shares: q.capShares ?? null,
        lines: q.lines.map((l) => l.text),
      }
    : { reason: q.reason, at: q.at ?? null, message: q.message };
}

export function historyScenario(): unknown[] {
  const t = new Tariff(validateTariff(JSON.parse(JSON.stringify(DOC))));
  const out: unknown[] = [];
  const history: PriorPurchase[] = [];
  const ledger = new PurchaseHistory({ capacity: 8 });
  const token = Uint8Array.from({ length: 16 }, (_, i) => i);
  // Monday 1 June 2026 from 08:00 BST: purchases an hour and a half apart, each of 2 hours.
  let start = Date.UTC(2026, 5, 1, 7, 0, 0) / 1000;
  for (let i = 0; i < 6; i++) {
    const q = t.quoteDuration({ bay: 1 + (i % 3), start, minutes: 120, history: ledger.of(token, start) });
    out.push(brief(q));
    if (q.ok) {
      ledger.add(token, q.capShares ?? []);
      history.push(...(q.capShares ?? []));
      start = q.paidUntil + 90 * 60;
    } else start += 30 * 60;
  }
  out.push(brief(t.quoteDuration({ bay: 1, start: Date.UTC(2026, 5, 1, 19, 0, 0) / 1000, minutes: 30 })));
  out.push(
    brief(t.quoteAmount({ bay: 2, start: Date.UTC(2026, 5, 2, 9, 0, 0) / 1000, amount: 1000, history })),
  );
  out.push(ledger.size);
  return out;
}
