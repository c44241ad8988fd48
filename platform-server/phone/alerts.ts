// Pay by phone's alerts and replies: the lead-time alert (or the automatic extension), the grace
// alert, sessions expiring, the messages sent to a driver, and incoming SMS and voice key presses
// answered (extend, status, stop, help).
import type { Channel } from './channels';
import type { Accounts } from './accounts';
import type { PhoneContext } from './context';
import {
  type AlertChannel,
  capitalise,
  type DriverRow,
  type MessageView,
  PhoneError,
  recipientOf,
  type SessionRow,
  safePhone,
} from './model';
import type { Pairing } from './pairing';
import { type Intent, ivrMenu, parseDtmf, parseSms, SMS_HELP } from './replies';
import type { Renewals } from './renewals';

export class Alerts {
  readonly #c: PhoneContext;
  readonly #accounts: Accounts;
  readonly #pairing: Pairing;
  readonly #renewals: Renewals;

  constructor(context: PhoneContext, parts: { accounts: Accounts; pairing: Pairing; renewals: Renewals }) {
    this.#c = context;
    this.#accounts = parts.accounts;
    this.#pairing = parts.pairing;
    this.#renewals = parts.renewals;
  }

  async messages(driverId: number): Promise<MessageView[]> {
    const rows = await this.#c.db.query<{
      id: number;
      channel: Channel;
      recipient: string;
      kind: string;
      body: string;
      status: string;
      attempts: number;
      created_at: Date;
      delivered_at: Date | null;
    }>('SELECT * FROM outbox WHERE driver_id = $1 ORDER BY id DESC LIMIT 100', [driverId]);
    return rows.rows.map((m) => ({
      id: m.id,
      channel: m.channel,
      recipient: m.recipient,
      kind: m.kind,
      body: m.body,
      status: m.status,
      attempts: m.attempts,
      createdAt: m.created_at.toISOString(),
      deliveredAt: m.delivered_at?.toISOString() ?? null,
    }));
  }

  /** An SMS from a driver; returns the reply, which also goes out through the outbox. */
  async handleSms(from: string, text: string): Promise<string> {
    const driver = await this.#accounts.driverByPhone(from);
    const reply = driver
      ? await this.#answer(driver, parseSms(text), 'sms')
      : 'ParkLink: this number is not registered. Register in the ParkLink app to renew your parking by text.';
    await this.#c.outbox.enqueue(this.#c.db, {
      driverId: driver?.id ?? null,
      channel: 'sms',
      recipient: driver
        ? recipientOf(driver, 'sms')
        : (safePhone(from, this.#c.options.country) ?? from.slice(0, 32)),
      kind: 'reply',
      body: reply,
    });
    void this.#c.track(this.#c.outbox.deliverDue());
    return reply;
  }

  /** One step of the voice menu: the caller's digits (empty on answer) → what to say next. */
  async handleVoice(from: string, digits: string): Promise<{ say: string; gather: boolean }> {
    const driver = await this.#accounts.driverByPhone(from);
    if (!driver) return { say: 'This number is not registered with ParkLink. Goodbye.', gather: false };
    const intent = parseDtmf(digits);
    if (intent.kind === 'help') {
      const session = await this.#pairing.activeSession(driver.id);
      const intro = session
        ? `Your parking at bay ${session.bay_id} is paid until ${this.#c.hhmm(session.paid_until.getTime() / 1000)}. `
        : 'You have no active parking session. ';
      return { say: `${intro}${session ? ivrMenu() : 'Goodbye.'}`, gather: Boolean(session) };
    }
    if (intent.kind === 'unknown')
      return { say: `Sorry, ${digits} is not an option. ${ivrMenu()}`, gather: true };
    const say = await this.#answer(driver, intent, 'voice');
    return { say, gather: intent.kind === 'status' };
  }

  async #answer(driver: DriverRow, intent: Intent, channel: 'sms' | 'voice'): Promise<string> {
    switch (intent.kind) {
      case 'extend':
        try {
          const r = await this.#renewals.renew(driver.id, { minutes: intent.minutes, channel });
          return `ParkLink: extending bay ${r.bayId} by ${r.minutes} min for ${r.chargeText}. We will confirm as soon as the meter has it.`;
        } catch (error) {
          if (!(error instanceof PhoneError)) throw error;
          // Refused (maximum stay, restricted period, …): the reason, and what the driver can do.
          const more = error.maxMinutes ?? 0;
          if (channel === 'voice')
            return `Sorry, your parking ${error.message.replace(/^cannot extend: /, 'cannot be extended: ')}.`;
          return `ParkLink: ${capitalise(error.message)}.${
            more > 0 ? ` Reply EXTEND ${more} to add what is left.` : ''
          }`;
        }
      case 'status': {
        const s = await this.#pairing.activeSession(driver.id);
        return s
          ? `ParkLink: bay ${s.bay_id} at meter ${s.meter_id} is paid until ${this.#c.hhmm(s.paid_until.getTime() / 1000)}.`
          : 'ParkLink: you have no active parking session.';
      }
      case 'stop': {
        const s = await this.#pairing.activeSession(driver.id);
        if (s)
          await this.#c.db.query(
            'UPDATE phone_sessions SET alerted_for = paid_until, grace_alerted_for = paid_until WHERE id = $1',
            [s.id],
          );
        return 'ParkLink: no more alerts for this parking session. Reply EXTEND 30 if you change your mind.';
      }
      case 'help':
        return SMS_HELP;
      default:
        return `ParkLink: sorry, we did not understand "${intent.text.slice(0, 40)}". ${SMS_HELP.slice('ParkLink: '.length)}`;
    }
  }

  async #leadAlert(s: SessionRow & DriverRow, sessionId: number): Promise<void> {
    await this.#c.db.query('UPDATE phone_sessions SET alerted_for = paid_until WHERE id = $1', [sessionId]);
    const until = this.#c.hhmm(s.paid_until.getTime() / 1000);
    if (s.renew_option === 'auto') {
      // Option 1: the automatic extension, accepted in advance, before the time runs out.
      try {
        const r = await this.#renewals.renew(s.driver_id, {
          sessionId,
          minutes: s.auto_minutes,
          channel: 'auto',
        });
        await this.#alert(s, sessionId, 'auto-extension', {
          sms: `ParkLink: your parking at bay ${s.bay_id} ends at ${until}; extending it automatically by ${r.minutes} min for ${r.chargeText}. We will confirm when the meter has it.`,
          voice: `Your parking at bay ${s.bay_id} ends at ${until}. It is being extended automatically by ${r.minutes} minutes.`,
          app: `Bay ${s.bay_id} ends at ${until}: auto-extending by ${r.minutes} min (${r.chargeText}).`,
        });
      } catch (error) {
        const why = error instanceof PhoneError ? error.message : 'the extension failed';
        await this.#alert(s, sessionId, 'auto-extension-failed', {
          sms: `ParkLink: your parking at bay ${s.bay_id} ends at ${until} and could not be extended automatically: ${why}.`,
          voice: `Your parking at bay ${s.bay_id} ends at ${until} and could not be extended automatically.`,
          app: `Bay ${s.bay_id} ends at ${until}; automatic extension failed: ${why}.`,
        });
        if (!(error instanceof PhoneError)) throw error;
      }
      return;
    }
    await this.#alert(s, sessionId, 'expiry', {
      sms: `ParkLink: your parking at bay ${s.bay_id} (meter ${s.meter_id}) ends at ${until}. Reply EXTEND 30 to add 30 minutes, or EXTEND and any minutes.`,
      voice: `Your parking at bay ${s.bay_id} ends at ${until}. ${ivrMenu()}`,
      app: `Your parking at bay ${s.bay_id} ends at ${until}. Open ParkLink to extend.`,
    });
  }

  /** `s` is a session row joined with its driver's columns (so `s.id` is the session's). */
  async #alert(
    s: SessionRow & DriverRow,
    sessionId: number,
    kind: string,
    bodies: Record<AlertChannel, string>,
  ): Promise<void> {
    const channel = s.alert_channel;
    await this.#c.outbox.enqueue(this.#c.db, {
      driverId: s.driver_id,
      channel,
      recipient: recipientOf(s, channel),
      kind,
      body: bodies[channel],
    });
    this.#c.emit('alert', { sessionId, kind });
  }

  /** The scheduler's part: lead-time alerts and auto-extensions, grace alerts, expiries. */
  async tick(now: number): Promise<void> {
    const at = new Date(now);
    const due = await this.#c.db.query<SessionRow & DriverRow & { session_id: number }>(
      `SELECT s.*, s.id AS session_id, d.account_number, d.name, d.phone, d.email, d.renewal_phone, d.renewal_email,
              d.alert_channel, d.lead_minutes, d.renew_option, d.auto_minutes, d.grace_minutes
         FROM phone_sessions s JOIN drivers d ON d.id = s.driver_id
        WHERE s.status = 'active' AND s.alerted_for IS DISTINCT FROM s.paid_until
          AND s.paid_until - make_interval(mins => d.lead_minutes) <= $1 AND s.paid_until > $1`,
      [at],
    );
    for (const s of due.rows) await this.#leadAlert(s, s.session_id);

    const grace = await this.#c.db.query<SessionRow & DriverRow & { session_id: number }>(
      `SELECT s.*, s.id AS session_id, d.account_number, d.name, d.phone, d.email, d.renewal_phone, d.renewal_email,
              d.alert_channel, d.lead_minutes, d.renew_option, d.auto_minutes, d.grace_minutes
         FROM phone_sessions s JOIN drivers d ON d.id = s.driver_id
        WHERE s.status = 'active' AND d.renew_option = 'phone' AND d.grace_minutes > 0
          AND s.grace_alerted_for IS DISTINCT FROM s.paid_until
          AND s.paid_until <= $1 AND s.paid_until + make_interval(mins => d.grace_minutes) > $1`,
      [at],
    );
    for (const s of grace.rows) {
      const graceEnd = s.paid_until.getTime() / 1000 + s.grace_minutes * 60;
      await this.#c.db.query('UPDATE phone_sessions SET grace_alerted_for = paid_until WHERE id = $1', [
        s.session_id,
      ]);
      await this.#alert(s, s.session_id, 'grace', {
        sms: `ParkLink: your time at bay ${s.bay_id} has run out. The grace period ends at ${this.#c.hhmm(graceEnd)}: reply EXTEND 30 now to add 30 minutes.`,
        voice: `Your paid time at bay ${s.bay_id} has run out. The grace period ends at ${this.#c.hhmm(graceEnd)}. ${ivrMenu()}`,
        app: `Time is up at bay ${s.bay_id}. Grace period until ${this.#c.hhmm(graceEnd)}: open ParkLink to extend.`,
      });
    }

    await this.#c.db.query(
      `UPDATE phone_sessions s SET status = 'expired', end_reason = 'expired', ended_at = $1
         FROM drivers d WHERE d.id = s.driver_id AND s.status = 'active'
          AND s.paid_until + make_interval(mins => d.grace_minutes) <= $1
          AND NOT EXISTS (SELECT 1 FROM renewals r WHERE r.session_id = s.id AND r.status = 'sent')`,
      [at],
    );
  }
}
