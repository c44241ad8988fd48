// A renewal paid by phone and applied by its meter, stored as the phone room stores one (a driver,
// a card, the session the first tap paired, the renewal), for the tests of what reads them
// (reports, clearance) without driving a whole pay-by-phone flow.
import { randomBytes } from 'node:crypto';
import type { Database } from '../../platform-server/core/db';

export async function storeAppliedRenewal(
  db: Pick<Database, 'query'>,
  r: {
    id: string;
    meterId: number;
    bayId: number;
    minutes: number;
    charge: number;
    cardType: 1 | 2 | 3;
    channel: string;
    appliedAt: string;
  },
): Promise<void> {
  const tag = randomBytes(4).toString('hex');
  const driver = await db.query<{ id: string }>(
    `INSERT INTO drivers (account_number, name, phone, email, password_hash)
     VALUES ($1, 'Test driver', $2, $3, 'not a password') RETURNING id`,
    [`PL-${tag}`, `+447${String(Number.parseInt(tag, 16) % 1e9).padStart(9, '0')}`, `${tag}@example.invalid`],
  );
  const card = await db.query<{ id: string }>(
    "INSERT INTO driver_cards (driver_id, token, last4, card_type) VALUES ($1, $2, '0017', $3) RETURNING id",
    [driver.rows[0].id, randomBytes(16).toString('hex'), r.cardType],
  );
  const applied = Date.parse(r.appliedAt);
  const session = await db.query<{ id: string }>(
    `INSERT INTO phone_sessions (driver_id, card_id, meter_id, bay_id, tx_seq, paid_from, paid_until, paid_minutes, first_charge, currency, created_at)
     VALUES ($1, $2, $3, $4, 1, $5, $6, 30, 60, 826, $5) RETURNING id`,
    [
      driver.rows[0].id,
      card.rows[0].id,
      r.meterId,
      r.bayId,
      new Date(applied - 3_600_000),
      new Date(applied),
    ],
  );
  await db.query(
    `INSERT INTO renewals (id, session_id, driver_id, meter_id, bay_id, minutes, charge, currency, card_id, funding,
                           authorisation, channel, status, requested_at, valid_until, applied_at, paid_until)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 826, $8, 'direct', $9, $10, 'applied', $11, $12, $11, $13)`,
    [
      r.id,
      session.rows[0].id,
      driver.rows[0].id,
      r.meterId,
      r.bayId,
      r.minutes,
      r.charge,
      card.rows[0].id,
      `auth-${r.id}`,
      r.channel,
      new Date(applied),
      new Date(applied + 600_000),
      new Date(applied + r.minutes * 60_000),
    ],
  );
}
