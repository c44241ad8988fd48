// Parking started from the phone, without a tap: the driver types the bay code printed on the meter
// ("1001-2": the meter's number and the bay's), the vehicle's plate and how long. The platform
// prices it with the meter's tariff (the same engine as a tap) and the driver confirms that price;
// the session is then paid and sent to the meter as a renewal (0x86), which the meter applies from
// now (firmware/units/registration.ts), so its display shows the bay paid. Should the meter never
// apply it, the renewal is voided and refunded and the session ends as not started.
import { normalisePlate } from '../core/plates';
import type { PhoneContext } from './context';
import { type CardRow, PhoneError, type RenewalView, type SessionRow } from './model';
import { type ExtensionChoice, extensionChoices } from './pricing';
import type { Renewals } from './renewals';

/** The bay code on a meter: its number and the bay's, with a dash, slash or space between. */
const BAY_CODE = /^\s*(\d{1,10})\s*[-/ ]\s*(\d{1,3})\s*$/;

export function readBayCode(raw: string): { meterId: number; bayId: number } {
  const m = BAY_CODE.exec(raw);
  const meterId = m ? Number(m[1]) : Number.NaN;
  if (!m || meterId > 0xffffffff)
    throw PhoneError.onField(
      400,
      'bad-code',
      'Enter the bay code printed on the meter: its number and the bay, such as 1001-2.',
      'code',
    );
  return { meterId, bayId: Number(m[2]) };
}

/** The vehicle's plate as enforcement compares it (core/plates.ts), or a 400 on the plate field. */
export function readPlate(raw: string): string {
  const plate = normalisePlate(raw);
  if (plate === undefined)
    throw PhoneError.onField(
      400,
      'bad-plate',
      "Enter the vehicle's number plate, letters and digits only, such as AB12 CDE.",
      'plate',
    );
  return plate;
}

export interface StartQuote {
  meterId: number;
  meterName: string;
  bayId: number;
  /** What the asked minutes give and cost (absent when no minutes were asked). */
  minutes?: number;
  amount?: number;
  currency?: number;
  /** What can be bought at this bay now. */
  choices: ExtensionChoice[];
  maxMinutes: number;
}

export class Starts {
  readonly #c: PhoneContext;
  readonly #renewals: Renewals;

  constructor(context: PhoneContext, renewals: Renewals) {
    this.#c = context;
    this.#renewals = renewals;
  }

  /** The price of parking at the bay of `code` for `minutes`, and the choices there. */
  async quote(input: { code: string; minutes?: number }): Promise<StartQuote> {
    const { meterId, bayId } = readBayCode(input.code);
    const names = await this.#c.options.meters.names([meterId]);
    const meterName = names.get(meterId);
    if (meterName === undefined)
      throw PhoneError.onField(
        404,
        'unknown-code',
        `No ParkLink meter has the number ${meterId}: check the code printed on the meter.`,
        'code',
      );
    const { pricing } = this.#c.options;
    const request = { meterId, bayId, start: Math.floor(this.#c.now() / 1000), paidMinutes: 0 };
    const maxMinutes = pricing.maxMinutes(request);
    const choices = extensionChoices(pricing, request);
    if (choices.length === 0) {
      const probe = pricing.quote({ ...request, minutes: 1 });
      const why = probe.ok ? 'no time can be bought there now' : probe.message;
      throw PhoneError.onField(
        409,
        'no-sale',
        `Parking at bay ${bayId} of meter ${meterId}: ${why}.`,
        'code',
      );
    }
    const quote: StartQuote = { meterId, meterName, bayId, choices, maxMinutes };
    if (input.minutes !== undefined) {
      const q = pricing.quote({ ...request, minutes: input.minutes });
      if (!q.ok) throw new PhoneError(422, q.reason, `cannot park: ${q.message}`, q.maxMinutes);
      Object.assign(quote, { minutes: q.minutes, amount: q.amount, currency: q.currency });
    }
    return quote;
  }

  /**
   * Starts parking at the bay of `code` for `minutes`, paid with `cardId` (else the renewal card),
   * at the price the driver was shown (`amount`): 409 price-changed when it is no longer that.
   */
  async start(
    driverId: number,
    input: { code: string; plate: string; minutes: number; amount: number; cardId?: number },
  ): Promise<{ sessionId: number; renewal: RenewalView }> {
    const plate = readPlate(input.plate);
    const quote = await this.quote({ code: input.code, minutes: input.minutes });
    if (quote.amount !== input.amount)
      throw new PhoneError(
        409,
        'price-changed',
        `the price is now ${quote.amount} (minor units), not ${input.amount}: look at it again before paying`,
      );
    const card = await this.#card(driverId, input.cardId);
    const now = new Date(this.#c.now());
    // A new driver at the bay: the earlier session there ends, as a first tap there would end it.
    const { sessionId, ended } = await this.#c.db.transaction(async (tx) => {
      const earlier = await tx.query<SessionRow>(
        "UPDATE phone_sessions SET status = 'ended', end_reason = 'next-user', ended_at = $3 WHERE meter_id = $1 AND bay_id = $2 AND status = 'active' RETURNING *",
        [quote.meterId, quote.bayId, now],
      );
      const inserted = await tx.query<{ id: number }>(
        `INSERT INTO phone_sessions (driver_id, card_id, meter_id, bay_id, tx_seq, paid_from, paid_until, paid_minutes,
                                     first_charge, currency, created_at, plate)
         VALUES ($1, $2, $3, $4, NULL, $5, $5, 0, 0, $6, $5, $7) RETURNING id`,
        [driverId, card.id, quote.meterId, quote.bayId, now, quote.currency as number, plate],
      );
      return { sessionId: Number(inserted.rows[0].id), ended: earlier.rows.map((r) => Number(r.id)) };
    });
    try {
      const renewal = await this.#renewals.renew(driverId, {
        sessionId,
        minutes: input.minutes,
        channel: 'app',
      });
      return { sessionId, renewal };
    } catch (error) {
      // Not paid: the session never started, and the one it ended goes on. (Once a renewal exists
      // it was paid, and its own voiding ends the session.)
      await this.#c.db.transaction(async (tx) => {
        const dropped = await tx.query(
          'DELETE FROM phone_sessions WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM renewals WHERE session_id = $1)',
          [sessionId],
        );
        if (dropped.rowCount === 0) return;
        await tx.query(
          "UPDATE phone_sessions SET status = 'active', end_reason = NULL, ended_at = NULL WHERE id = ANY($1::bigint[])",
          [ended],
        );
      });
      throw error;
    }
  }

  async #card(driverId: number, cardId: number | undefined): Promise<CardRow> {
    const rows = await this.#c.db.query<CardRow>(
      `SELECT * FROM driver_cards WHERE driver_id = $1 AND removed_at IS NULL AND verified_at IS NOT NULL
          AND ($2::bigint IS NULL OR id = $2) ORDER BY renewal DESC, id LIMIT 1`,
      [driverId, cardId ?? null],
    );
    const card = rows.rows[0];
    if (!card)
      throw cardId === undefined
        ? new PhoneError(409, 'no-card', 'add a card to pay with first')
        : new PhoneError(404, 'no-card', `card ${cardId} is not one you can pay with`);
    return card;
  }
}
