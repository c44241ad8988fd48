// Pay by phone's accounts and cards: registration, login and bearer tokens, the driver's settings,
// and the cards a driver registers (kept as tokens, never card numbers) and links for renewals.
import { randomInt } from 'node:crypto';
import { ProtocolError } from '../../protocol/errors';
import type { Queryable } from '../core/db';
import { CardTokens } from '../keys/cardToken';
import { readCardNumber } from './cardNumbers';
import type { PhoneContext } from './context';
import {
  CARD_NUMBER,
  type AlertChannel,
  type CardRow,
  type CardView,
  cardTypeUnknown,
  cardView,
  type DriverRow,
  type DriverView,
  driverView,
  normalisePhone,
  PhoneError,
  type RenewOption,
  safePhone,
} from './model';
import {
  DEFAULT_PASSWORD_SCRYPT,
  hashPassword,
  type LoginLimits,
  newToken,
  tokenHash,
  verifyPassword,
} from './security';

export class Accounts {
  readonly #c: PhoneContext;
  readonly #tokens: CardTokens;
  #dummy: Promise<string> | undefined;

  constructor(context: PhoneContext, tokenKey: Uint8Array) {
    this.#c = context;
    this.#tokens = new CardTokens(tokenKey);
  }

  /**
   * The token of a card number as rows keep it (32 hex digits): protocol/cardToken.ts under the
   * fleet's card-token key, the one meters put in their records, so a registered card matches.
   */
  tokenOf(cardNumber: string): string {
    if (!CARD_NUMBER.test(cardNumber)) throw new ProtocolError('bad-field', 'card number is not 8-19 digits');
    return this.#tokens.tokenHex(cardNumber);
  }

  async register(input: {
    name: string;
    phone: string;
    email: string;
    password: string;
    alertChannel?: AlertChannel;
    leadMinutes?: number;
    renewOption?: RenewOption;
  }): Promise<{ driver: DriverView; token: string }> {
    const phone = normalisePhone(input.phone, this.#c.options.country);
    const email = input.email.trim().toLowerCase();
    const taken = await this.#c.db.query<{ phone: string; email: string }>(
      'SELECT phone, email FROM drivers WHERE phone = $1 OR email = $2',
      [phone, email],
    );
    if (taken.rows.some((r) => r.phone === phone))
      throw new PhoneError(409, 'phone-taken', 'this phone number is already registered: log in instead');
    if (taken.rows.length > 0)
      throw new PhoneError(409, 'email-taken', 'this e-mail address is already registered: log in instead');
    const hash = await hashPassword(
      input.password,
      this.#c.options.passwordScrypt ?? DEFAULT_PASSWORD_SCRYPT,
    );
    for (let attempt = 0; ; attempt++) {
      const account = `PL${String(randomInt(0, 10_000_000_000)).padStart(10, '0')}`;
      try {
        const row = await this.#c.db.query<DriverRow>(
          `INSERT INTO drivers (account_number, name, phone, email, password_hash, alert_channel, lead_minutes, renew_option)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
          [
            account,
            input.name.trim(),
            phone,
            email,
            hash,
            input.alertChannel ?? 'sms',
            input.leadMinutes ?? 10,
            input.renewOption ?? 'phone',
          ],
        );
        const driver = driverView(row.rows[0]);
        return { driver, token: await this.#issueToken(driver.id) };
      } catch (error) {
        if (attempt < 3 && /account_number/.test(String((error as Error).message))) continue;
        if (/drivers_(phone|email)_key/.test(String((error as Error).message)))
          throw new PhoneError(409, 'taken', 'this phone number or e-mail address is already registered');
        throw error;
      }
    }
  }

  /**
   * Logs in with phone number, e-mail or account number. With `limits`, failed logins count
   * per address and per account (the driver, whichever identifier was typed; the typed identifier
   * when no driver has it, so an unknown login locks like a known one), and an address or account
   * over its limit gets a 429 before any password is checked.
   */
  async login(
    identifier: string,
    password: string,
    attempt?: { address: string; limits: LoginLimits },
  ): Promise<{ driver: DriverView; token: string }> {
    const tooMany = (wait: number) =>
      new PhoneError(
        429,
        'too-many-requests',
        `too many login attempts: try again in ${wait} s`,
        undefined,
        wait,
      );
    const addressWait = attempt?.limits.startAddress(attempt.address) ?? 0;
    if (addressWait) throw tooMany(addressWait);
    const id = identifier.trim();
    const phone = /^[+0-9 ()-]{6,24}$/.test(id) ? safePhone(id, this.#c.options.country) : null;
    const row = await this.#c.db.query<DriverRow>(
      'SELECT * FROM drivers WHERE phone = $1 OR email = $2 OR account_number = $3 LIMIT 1',
      [phone, id.toLowerCase(), id.toUpperCase()],
    );
    const driver = row.rows[0];
    const account = driver ? `driver:${driver.id}` : `login:${phone ?? id.toLowerCase()}`;
    const accountWait = attempt?.limits.startAccount(attempt.address, account) ?? 0;
    if (accountWait) throw tooMany(accountWait);
    // The hash is computed even for an unknown login, so timing does not tell which exist.
    const ok = await verifyPassword(password, driver?.password_hash ?? (await this.#dummyHash()));
    // A failure stays counted (from its start) against the address and the account.
    if (!driver || !ok) throw new PhoneError(401, 'bad-credentials', 'wrong phone, e-mail or password');
    attempt?.limits.succeeded(attempt.address, account);
    return { driver: driverView(driver), token: await this.#issueToken(driver.id) };
  }

  /** A hash with this platform's scrypt parameters: an unknown login costs what a known one does. */
  #dummyHash(): Promise<string> {
    this.#dummy ??= hashPassword(newToken(), this.#c.options.passwordScrypt ?? DEFAULT_PASSWORD_SCRYPT);
    return this.#dummy;
  }

  async #issueToken(driverId: number): Promise<string> {
    const token = newToken();
    await this.#c.db.query(
      'INSERT INTO driver_tokens (token_hash, driver_id, expires_at) VALUES ($1, $2, $3)',
      [tokenHash(token), driverId, new Date(Date.now() + (this.#c.options.tokenTtlMs ?? 12 * 3600_000))],
    );
    return token;
  }

  /** The driver a bearer token belongs to, or undefined. Token lifetimes run on real time. */
  async authenticate(token: string): Promise<number | undefined> {
    const row = await this.#c.db.query<{ driver_id: number }>(
      'SELECT driver_id FROM driver_tokens WHERE token_hash = $1 AND expires_at > $2',
      [tokenHash(token), new Date()],
    );
    return row.rows[0]?.driver_id;
  }

  async logout(token: string): Promise<void> {
    await this.#c.db.query('DELETE FROM driver_tokens WHERE token_hash = $1', [tokenHash(token)]);
  }

  async driver(driverId: number): Promise<DriverView> {
    const row = await this.#c.db.query<DriverRow>('SELECT * FROM drivers WHERE id = $1', [driverId]);
    if (!row.rows[0]) throw new PhoneError(404, 'no-driver', 'account not found');
    return driverView(row.rows[0]);
  }

  async updateSettings(
    driverId: number,
    s: Partial<{
      renewalPhone: string | null;
      renewalEmail: string | null;
      alertChannel: AlertChannel;
      leadMinutes: number;
      renewOption: RenewOption;
      autoMinutes: number;
      graceMinutes: number;
      name: string;
    }>,
  ): Promise<DriverView> {
    const current = await this.driver(driverId);
    const next = { ...current, ...s };
    const renewalPhone = s.renewalPhone
      ? normalisePhone(s.renewalPhone, this.#c.options.country, 'renewalPhone')
      : s.renewalPhone === ''
        ? null
        : next.renewalPhone;
    const renewalEmail = s.renewalEmail
      ? s.renewalEmail.trim().toLowerCase()
      : s.renewalEmail === ''
        ? null
        : next.renewalEmail;
    const row = await this.#c.db.query<DriverRow>(
      `UPDATE drivers SET name = $2, renewal_phone = $3, renewal_email = $4, alert_channel = $5, lead_minutes = $6,
              renew_option = $7, auto_minutes = $8, grace_minutes = $9 WHERE id = $1 RETURNING *`,
      [
        driverId,
        next.name,
        renewalPhone ?? null,
        renewalEmail ?? null,
        next.alertChannel,
        next.leadMinutes,
        next.renewOption,
        next.autoMinutes,
        next.graceMinutes,
      ],
    );
    return driverView(row.rows[0]);
  }

  async addCard(
    driverId: number,
    input: { cardNumber: string; label?: string; renewal?: boolean },
  ): Promise<CardView> {
    const { digits: number, scheme } = readCardNumber(input.cardNumber);
    const token = this.tokenOf(number);
    const unavailable = () =>
      new PhoneError(
        409,
        'card-unavailable',
        'this card cannot be added: if it is not among your cards already, contact support',
      );
    return this.#c.db.transaction(async (tx) => {
      const held = await tx.query<{ driver_id: number; verified: boolean }>(
        'SELECT driver_id, verified_at IS NOT NULL AS verified FROM driver_cards WHERE token = $1 AND removed_at IS NULL',
        [token],
      );
      // Only a card already on this driver's own account is refused; the driver knows their cards.
      if (held.rows.some((r) => Number(r.driver_id) === driverId)) throw unavailable();
      if (input.renewal)
        await tx.query('UPDATE driver_cards SET renewal = false WHERE driver_id = $1', [driverId]);
      // Another account verified for the token: the card is added as this driver's claim, which
      // neither pairs nor pays (pairing.ts, renewals.ts) and looks like any other card in every
      // answer, so registering tells nobody that the card is held. Same queries either way.
      const insert = (verified: boolean) =>
        tx.query<CardRow>(
          `INSERT INTO driver_cards (driver_id, token, last4, scheme, label, renewal, verified_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING *`,
          [
            driverId,
            token,
            number.slice(-4),
            scheme,
            (input.label ?? '').trim(),
            input.renewal ?? false,
            verified ? new Date(this.#c.now()) : null,
          ],
        );
      const verified = !held.rows.some((r) => r.verified);
      let row = await insert(verified);
      // A registration of the same token committed since the look-up: verified by another account
      // (then this one is a claim), or the same driver's twice (then it is refused as above).
      if (row.rows.length === 0 && verified) row = await insert(false);
      if (row.rows.length === 0) throw unavailable();
      return cardView(row.rows[0]);
    });
  }

  async cards(driverId: number): Promise<CardView[]> {
    const rows = await this.#c.db.query<CardRow>(
      'SELECT * FROM driver_cards WHERE driver_id = $1 AND removed_at IS NULL ORDER BY id',
      [driverId],
    );
    return rows.rows.map(cardView);
  }

  async #card(driverId: number, cardId: number, q: Queryable = this.#c.db): Promise<CardRow> {
    const row = await q.query<CardRow>(
      'SELECT * FROM driver_cards WHERE id = $1 AND driver_id = $2 AND removed_at IS NULL',
      [cardId, driverId],
    );
    if (!row.rows[0]) throw new PhoneError(404, 'no-card', `card ${cardId} is not on your account`);
    return row.rows[0];
  }

  async removeCard(driverId: number, cardId: number): Promise<void> {
    await this.#card(driverId, cardId);
    await this.#c.db.query('UPDATE driver_cards SET pays_with = NULL WHERE pays_with = $1', [cardId]);
    await this.#c.db.query(
      'UPDATE driver_cards SET removed_at = $2, renewal = false, pays_with = NULL WHERE id = $1',
      [cardId, new Date(this.#c.now())],
    );
  }

  /** Step c: renewals of sessions started with `cardId` are paid from `paysWith` (null: itself). */
  async updateCard(
    driverId: number,
    cardId: number,
    change: { paysWith?: number | null; renewal?: boolean; label?: string },
  ): Promise<CardView> {
    const card = await this.#card(driverId, cardId);
    if (change.paysWith !== undefined && change.paysWith !== null) {
      if (change.paysWith === cardId)
        throw new PhoneError(400, 'bad-link', 'a card cannot be linked to itself');
      await this.#card(driverId, change.paysWith);
    }
    if (change.renewal)
      await this.#c.db.query('UPDATE driver_cards SET renewal = false WHERE driver_id = $1', [driverId]);
    const row = await this.#c.db.query<CardRow>(
      'UPDATE driver_cards SET pays_with = $2, renewal = $3, label = $4 WHERE id = $1 RETURNING *',
      [
        cardId,
        change.paysWith === undefined ? card.pays_with : change.paysWith,
        change.renewal ?? card.renewal,
        change.label?.trim() ?? card.label,
      ],
    );
    return cardView(row.rows[0]);
  }

  /**
   * Keeps the debit card's card on file at the payment provider (the customer and the payment
   * method the provider saved when the driver set the card up with it), so renewals can charge it
   * off-session. 400 for ids that are not the provider's shape, 409 for a card that is not debit.
   */
  async saveCardOnFile(
    driverId: number,
    cardId: number,
    onFile: { customer: string; paymentMethod: string },
  ): Promise<CardView> {
    const card = await this.#card(driverId, cardId);
    if (card.card_type === null) throw cardTypeUnknown();
    if (card.card_type !== 1)
      throw new PhoneError(409, 'not-debit', 'only a debit card is charged through the payment provider');
    const id = /^[A-Za-z0-9_]{3,255}$/;
    if (!id.test(onFile.customer) || !id.test(onFile.paymentMethod))
      throw new PhoneError(
        400,
        'bad-card-on-file',
        'a customer and a payment method are ids of the payment provider',
      );
    const row = await this.#c.db.query<CardRow>(
      'UPDATE driver_cards SET provider_customer = $2, provider_payment_method = $3 WHERE id = $1 RETURNING *',
      [cardId, onFile.customer, onFile.paymentMethod],
    );
    return cardView(row.rows[0]);
  }

  async driverByPhone(from: string): Promise<DriverRow | undefined> {
    const phone = safePhone(from, this.#c.options.country);
    if (!phone) return undefined;
    const row = await this.#c.db.query<DriverRow>(
      'SELECT * FROM drivers WHERE phone = $1 OR renewal_phone = $1 ORDER BY (phone = $1) DESC LIMIT 1',
      [phone],
    );
    return row.rows[0];
  }
}
