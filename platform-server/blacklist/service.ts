// The fleet blacklist on the platform (blacklist management 45, management service 414): cards
// listed by token with a reason, one list version raised by every add or remove, pushed to the
// meters as 0x8A deltas on top of the version each acknowledged (0x0A), or as a full list in pages
// when a meter is too far behind (its changes pruned, more changes than one frame carries, or a
// version the platform does not know). Pushed on change to every online meter; a meter behind is
// caught up when its acknowledgement says so and on its next contact (any accepted uplink).
//
// Cards a meter refuses as not genuine (operation record 'card-cloned') enter a review queue that
// an operator confirms (the card is then listed as 'cloned') or dismisses: see docs/blacklist.md.
//
// Its HTTP API is routes.ts; index.ts wires the room.
import {
  BLACKLIST_DOWNLINK,
  BLACKLIST_PAGE_ENTRIES,
  type BlacklistAck,
  type BlacklistPush,
  type BlacklistReason,
  type BlacklistWireEntry,
  blacklistPages,
  decodeBlacklistAck,
  encodeBlacklistPush,
  isBlacklistReason,
  reasonCode,
} from '../../protocol/blacklist';
import { RequestRefused } from '../core/errors';
import { fromHex } from '../../protocol/bytes';
import { type MeterRecord, RecordKind } from '../../protocol/records';
import type { Database, Queryable } from '../core/db';
import type { UplinkHandler } from '../ingest/gate';
import type { CardTokens } from '../keys/cardToken';
import type { ContactBox, HolderContact } from './contacts';

export interface BlacklistDeps {
  db: Database;
  cardTokens: Pick<CardTokens, 'tokenHex'>;
  contacts: ContactBox;
  /** Seals and publishes a downlink (Ingest.sendDownlink); returns its sequence number. */
  sendDownlink(meterId: number, type: number, body: Uint8Array): Promise<number>;
  /** A meter seen within this many seconds is online and gets a change at once (default 3600). */
  onlineWithinS?: number;
  /** Changes kept for deltas (default 1000); a meter further behind gets the full list. */
  keepChanges?: number;
  /** A contact does not push again to a meter pushed the current version this recently (default 60 s). */
  resendAfterMs?: number;
  logger?: { warn(obj: object, msg?: string): void };
}

/** A request the blacklist refuses: an HTTP status, a stable code, the field at fault. */
export class BlacklistRefused extends RequestRefused {
  override readonly name: string = 'BlacklistRefused';
}

export interface ListedCard {
  token: string;
  last4: string | null;
  reason: BlacklistReason;
  version: number;
  addedAt: string;
  addedBy: string;
  /** Whether contacts of the holder are kept (read them with contactOf, supervisors only). */
  hasContact: boolean;
}

export interface StaleMeter {
  meterId: number;
  ackedVersion: number | null;
  pushedVersion: number | null;
  lastSeenAt: string | null;
  online: boolean;
}

export interface ReviewItem {
  id: number;
  meterId: number;
  recordSeq: number;
  seenAt: string;
  cardUid: string | null;
  token: string | null;
  last4: string | null;
  detail: string;
  status: 'pending' | 'confirmed' | 'dismissed';
}

export interface AddCard {
  cardNumber?: string;
  token?: string;
  reason: string;
  contact?: HolderContact;
}

export type CatchUp = 'current' | 'delta' | 'full' | 'recent';

/** A meter's refusal of a card it found cloned: the review queue takes it. */
export function isClonedCardRecord(
  record: MeterRecord,
): record is Extract<MeterRecord, { kind: typeof RecordKind.Operation }> {
  return record.kind === RecordKind.Operation && record.data.code === 'card-cloned';
}

/** A meter's row of blacklist_meters as a catch-up reads it (nulls: never pushed or acknowledged). */
interface PushState {
  acked_version: string | number | null;
  pushed_version: string | number | null;
  pushed_recently: boolean | null;
  current: string | number;
}

/** Why a catch-up sends nothing to a meter in `state`, or undefined when it has to send. */
function leftAlone(state: PushState, options: { force?: boolean; full?: boolean }): CatchUp | undefined {
  const current = Number(state.current);
  const acked = state.acked_version === null ? undefined : Number(state.acked_version);
  if (acked === current && !options.full) return 'current';
  // An empty list at version 0 is what a new meter holds: a contact needs nothing sent yet.
  if (acked === undefined && current === 0 && !options.force && !options.full) return 'current';
  if (!options.force && state.pushed_recently && Number(state.pushed_version) === current) return 'recent';
  return undefined;
}

const TOKEN_HEX = /^[0-9a-f]{32}$/;
const CLONED_UID = /UID ([0-9a-f]{8,20})/;

export class BlacklistService {
  readonly #deps: BlacklistDeps;
  /** Each meter's acknowledged version, as this instance last saw it. */
  readonly #acked = new Map<number, number>();
  #current = 0;
  /** Pushes started by a change, not awaited by the API call: settled() waits for them. */
  readonly #pushing = new Set<Promise<unknown>>();
  /** Meters a contact is catching up now: a second uplink meanwhile does not push again. */
  readonly #contacting = new Set<number>();
  /** When a contact last made this instance look at a meter (Date.now()). */
  readonly #contactChecked = new Map<number, number>();
  /** The meters heard from in this turn, whose push states are read together (#contactState). */
  #look: { meterIds: number[]; states: Promise<PushState[]> } | undefined;

  constructor(deps: BlacklistDeps) {
    this.#deps = deps;
  }

  async load(): Promise<void> {
    this.#current = await this.currentVersion();
    const rows = await this.#deps.db.query<{ meter_id: string | number; acked_version: string | number }>(
      'SELECT meter_id, acked_version FROM blacklist_meters WHERE acked_version IS NOT NULL',
    );
    for (const r of rows.rows) this.#acked.set(Number(r.meter_id), Number(r.acked_version));
  }

  async currentVersion(q: Queryable = this.#deps.db): Promise<number> {
    const rows = await q.query<{ version: string | number }>('SELECT version FROM blacklist_state');
    return Number(rows.rows[0].version);
  }

  /**
   * Lists a card (by number, tokenised here and never stored, or by the token of a transaction or
   * operation the platform holds) with a reason and, optionally, the holder's contacts (sealed).
   * Listing a card again with the same reason changes nothing; with another reason, a new version.
   */
  async add(
    request: AddCard,
    by: string,
  ): Promise<{
    token: string;
    last4: string | null;
    reason: BlacklistReason;
    version: number;
    changed: boolean;
  }> {
    if (!isBlacklistReason(request.reason))
      throw new BlacklistRefused(
        400,
        'bad-reason',
        'reason is bad-debt, stolen, cloned or expired',
        'reason',
      );
    const reason = request.reason;
    let token: string;
    let last4: string | null;
    if (request.cardNumber !== undefined) {
      if (request.token !== undefined)
        throw new BlacklistRefused(400, 'bad-card', 'give a card number or a token, not both', 'token');
      if (!/^\d{8,19}$/.test(request.cardNumber))
        throw new BlacklistRefused(400, 'bad-card', 'a card number is 8 to 19 digits', 'cardNumber');
      token = this.#deps.cardTokens.tokenHex(request.cardNumber);
      last4 = request.cardNumber.slice(-4);
    } else if (request.token !== undefined) {
      if (!TOKEN_HEX.test(request.token))
        throw new BlacklistRefused(400, 'bad-card', 'a token is 32 lowercase hex digits', 'token');
      token = request.token;
      const held = await this.#last4Held(token);
      if (held === undefined)
        throw new BlacklistRefused(
          404,
          'unknown-token',
          'no transaction or operation of the fleet carries this card token',
          'token',
        );
      last4 = held;
    } else throw new BlacklistRefused(400, 'bad-card', 'give a card number or a token', 'cardNumber');
    const sealed = request.contact ? this.#deps.contacts.seal(request.contact, token) : null;
    const result = await this.#deps.db.transaction(async (tx) => {
      const held = await tx.query<{ reason: string }>(
        'SELECT reason FROM blacklist_cards WHERE card_token = $1 FOR UPDATE',
        [token],
      );
      if (held.rows[0]?.reason === reason) {
        if (sealed)
          await tx.query('UPDATE blacklist_cards SET holder_contact = $2 WHERE card_token = $1', [
            token,
            sealed,
          ]);
        return { version: await this.currentVersion(tx), changed: false };
      }
      const version = await this.#nextVersion(tx, token, 'add', reason);
      await tx.query(
        `INSERT INTO blacklist_cards (card_token, card_last4, reason, version, added_by, holder_contact)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (card_token) DO UPDATE SET reason = $3, version = $4, added_by = $5,
           holder_contact = COALESCE($6, blacklist_cards.holder_contact),
           card_last4 = COALESCE(blacklist_cards.card_last4, $2)`,
        [token, last4, reason, version, by, sealed],
      );
      return { version, changed: true };
    });
    if (result.changed) this.#changed(result.version);
    return { token, last4, reason, ...result };
  }

  /** Removes a card (and the holder's contacts with it); a new version. */
  async remove(token: string): Promise<{ version: number }> {
    if (!TOKEN_HEX.test(token))
      throw new BlacklistRefused(400, 'bad-card', 'a token is 32 lowercase hex digits', 'token');
    const version = await this.#deps.db.transaction(async (tx) => {
      const gone = await tx.query('DELETE FROM blacklist_cards WHERE card_token = $1 RETURNING card_token', [
        token,
      ]);
      if (gone.rows.length === 0)
        throw new BlacklistRefused(404, 'not-listed', 'this card is not listed', 'token');
      return this.#nextVersion(tx, token, 'remove', null);
    });
    this.#changed(version);
    return { version };
  }

  async #nextVersion(
    tx: Queryable,
    token: string,
    op: 'add' | 'remove',
    reason: string | null,
  ): Promise<number> {
    const rows = await tx.query<{ version: string | number }>(
      'UPDATE blacklist_state SET version = version + 1 RETURNING version',
    );
    const version = Number(rows.rows[0].version);
    await tx.query(
      'INSERT INTO blacklist_changes (version, card_token, op, reason) VALUES ($1, $2, $3, $4)',
      [version, token, op, reason],
    );
    await tx.query('DELETE FROM blacklist_changes WHERE version <= $1', [
      version - (this.#deps.keepChanges ?? 1000),
    ]);
    return version;
  }

  async #last4Held(token: string): Promise<string | null | undefined> {
    const rows = await this.#deps.db.query<{ card_last4: string | null }>(
      `SELECT card_last4 FROM transactions WHERE card_token = $1
       UNION ALL SELECT card_last4 FROM operations WHERE card_token = $1 LIMIT 1`,
      [token],
    );
    return rows.rows.length === 0 ? undefined : rows.rows[0].card_last4;
  }

  #changed(version: number): void {
    this.#current = Math.max(this.#current, version);
    const push = this.pushOnline().catch((error) =>
      this.#deps.logger?.warn({ err: error }, 'blacklist push failed'),
    );
    this.#pushing.add(push);
    void push.finally(() => this.#pushing.delete(push));
  }

  /** Waits for the pushes that changes started (tests, the bench, a clean stop). */
  async settled(): Promise<void> {
    while (this.#pushing.size > 0) await Promise.all([...this.#pushing]);
  }

  async list(): Promise<ListedCard[]> {
    const rows = await this.#deps.db.query<{
      card_token: string;
      card_last4: string | null;
      reason: BlacklistReason;
      version: string | number;
      added_at: Date;
      added_by: string;
      has_contact: boolean;
    }>(
      `SELECT card_token, card_last4, reason, version, added_at, added_by, holder_contact IS NOT NULL AS has_contact
         FROM blacklist_cards ORDER BY version`,
    );
    return rows.rows.map((r) => ({
      token: r.card_token,
      last4: r.card_last4,
      reason: r.reason,
      version: Number(r.version),
      addedAt: new Date(r.added_at).toISOString(),
      addedBy: r.added_by,
      hasContact: r.has_contact,
    }));
  }

  /** The holder's contacts, opened; undefined when the card is not listed or has none. */
  async contactOf(token: string): Promise<HolderContact | undefined> {
    const rows = await this.#deps.db.query<{ holder_contact: Uint8Array | null }>(
      'SELECT holder_contact FROM blacklist_cards WHERE card_token = $1',
      [token],
    );
    const sealed = rows.rows[0]?.holder_contact;
    return sealed ? this.#deps.contacts.open(sealed, token) : undefined;
  }

  /** Meters whose acknowledged version is behind the current one (or that acknowledged none). */
  async stale(): Promise<{ version: number; meters: StaleMeter[] }> {
    const version = await this.currentVersion();
    const rows = await this.#deps.db.query<{
      id: string | number;
      acked_version: string | number | null;
      pushed_version: string | number | null;
      last_seen_at: Date | null;
      online: boolean;
    }>(
      `SELECT m.id, b.acked_version, b.pushed_version, m.last_seen_at,
              COALESCE(m.last_seen_at > now() - make_interval(secs => $2), false) AS online
         FROM meters m LEFT JOIN blacklist_meters b ON b.meter_id = m.id
        WHERE b.acked_version IS NULL OR b.acked_version <> $1
        ORDER BY m.id`,
      [version, this.#deps.onlineWithinS ?? 3600],
    );
    return {
      version,
      meters: rows.rows.map((r) => ({
        meterId: Number(r.id),
        ackedVersion: r.acked_version === null ? null : Number(r.acked_version),
        pushedVersion: r.pushed_version === null ? null : Number(r.pushed_version),
        lastSeenAt: r.last_seen_at ? new Date(r.last_seen_at).toISOString() : null,
        online: r.online,
      })),
    };
  }

  /** Catches up every online meter that is behind; returns how many were pushed to. */
  async pushOnline(): Promise<number> {
    const rows = await this.#deps.db.query<{ id: string | number }>(
      `SELECT m.id FROM meters m LEFT JOIN blacklist_meters b ON b.meter_id = m.id
        WHERE m.last_seen_at > now() - make_interval(secs => $1)
          AND (b.acked_version IS NULL OR b.acked_version <> (SELECT version FROM blacklist_state))`,
      [this.#deps.onlineWithinS ?? 3600],
    );
    let pushed = 0;
    for (const r of rows.rows) {
      const done = await this.catchUp(Number(r.id), { force: true });
      if (done === 'delta' || done === 'full') pushed++;
    }
    return pushed;
  }

  /**
   * Brings one meter to the current version: nothing when it acknowledged it; a delta from the
   * version it acknowledged when those changes are kept and fit one frame; otherwise the full list
   * in pages. Without `force`, a meter pushed the current version within resendAfterMs is left
   * alone (the push is on its way). `full` forces the full list.
   */
  async catchUp(meterId: number, options: { force?: boolean; full?: boolean } = {}): Promise<CatchUp> {
    const { db } = this.#deps;
    const [row] = await this.#pushStates([meterId]);
    const current = Number(row.current);
    this.#current = Math.max(this.#current, current);
    const acked = row.acked_version === null ? undefined : Number(row.acked_version);
    const settled = leftAlone(row, options);
    if (settled) return settled;
    const delta = options.full || acked === undefined ? undefined : await this.#delta(acked);
    const pushes = delta ? [delta] : await this.#full();
    const version = pushes[0].version;
    let lastSeq = 0;
    for (const push of pushes)
      lastSeq = await this.#deps.sendDownlink(meterId, BLACKLIST_DOWNLINK, encodeBlacklistPush(push));
    await db.query(
      `INSERT INTO blacklist_meters (meter_id, pushed_version, pushed_seq, pushed_at) VALUES ($1, $2, $3, now())
       ON CONFLICT (meter_id) DO UPDATE SET pushed_version = $2, pushed_seq = $3, pushed_at = now()`,
      [meterId, version, lastSeq],
    );
    return delta ? 'delta' : 'full';
  }

  /** The delta from `base` to the current version, or undefined when it cannot be one frame. */
  async #delta(base: number): Promise<BlacklistPush | undefined> {
    const rows = await this.#deps.db.query<{
      current: string | number;
      min_kept: string | number | null;
      version: string | number | null;
      card_token: string | null;
      op: 'add' | 'remove' | null;
      reason: BlacklistReason | null;
    }>(
      `SELECT s.version AS current, (SELECT min(version) FROM blacklist_changes) AS min_kept,
              c.version, c.card_token, c.op, c.reason
         FROM blacklist_state s LEFT JOIN blacklist_changes c ON c.version > $1
        ORDER BY c.version`,
      [base],
    );
    const current = Number(rows.rows[0].current);
    if (base >= current) return undefined; // ahead of the platform: a version it does not know
    const minKept = rows.rows[0].min_kept === null ? undefined : Number(rows.rows[0].min_kept);
    if (minKept === undefined || base < minKept - 1) return undefined; // those changes are pruned
    const net = new Map<string, { op: 'add' | 'remove'; reason: BlacklistReason | null }>();
    for (const r of rows.rows) {
      if (r.card_token === null || r.op === null || Number(r.version) > current) continue;
      net.set(r.card_token, { op: r.op, reason: r.reason });
    }
    if (net.size > BLACKLIST_PAGE_ENTRIES) return undefined;
    const add: BlacklistWireEntry[] = [];
    const remove: Uint8Array[] = [];
    for (const [token, change] of net) {
      if (change.op === 'add' && change.reason)
        add.push({ token: fromHex(token), reason: reasonCode(change.reason) });
      else remove.push(fromHex(token));
    }
    return { kind: 'delta', version: current, base, add, remove };
  }

  /** The whole list at one version, in pages (one statement: list and version agree). */
  async #full(): Promise<BlacklistPush[]> {
    const rows = await this.#deps.db.query<{
      current: string | number;
      card_token: string | null;
      reason: BlacklistReason | null;
    }>(
      `SELECT s.version AS current, c.card_token, c.reason
         FROM blacklist_state s LEFT JOIN blacklist_cards c ON true ORDER BY c.card_token`,
    );
    const version = Number(rows.rows[0].current);
    const entries: BlacklistWireEntry[] = [];
    for (const r of rows.rows) {
      if (r.card_token && r.reason)
        entries.push({ token: fromHex(r.card_token), reason: reasonCode(r.reason) });
    }
    return blacklistPages(version, entries);
  }

  /**
   * Ingest's handler for 0x0A: records the version the meter holds, in the transaction that
   * accepts the frame; a meter behind (or refusing a delta) is caught up after the commit.
   */
  onAck: UplinkHandler = async ({ meterId, body }, tx) => {
    const ack: BlacklistAck = decodeBlacklistAck(body);
    await tx.query(
      `INSERT INTO blacklist_meters (meter_id, acked_version, acked_ok, acked_why, acked_at)
       VALUES ($1, $2, $3, $4, now())
       ON CONFLICT (meter_id) DO UPDATE SET acked_version = $2, acked_ok = $3, acked_why = $4, acked_at = now()`,
      [meterId, ack.version, ack.ok, ack.why ?? null],
    );
    return async () => {
      this.#acked.set(meterId, ack.version);
      if (ack.ok && ack.version === this.#current) return;
      // A list that does not fit the meter is not sent again until it changes (stale list shows it).
      if (ack.why === 'too-large') return;
      await this.catchUp(meterId, {
        force: ack.ok || ack.why === 'base-mismatch',
        full: ack.why === 'base-mismatch',
      });
    };
  };

  /** A meter was heard from (any accepted uplink but 0x0A): caught up when it is behind. */
  async onContact(meterId: number): Promise<void> {
    if (this.#acked.get(meterId) === this.#current || this.#contacting.has(meterId)) return;
    // At most one look per meter and resendAfterMs: ingest's hot path stays off the database.
    const now = Date.now();
    if (now - (this.#contactChecked.get(meterId) ?? -Infinity) < (this.#deps.resendAfterMs ?? 60_000)) return;
    this.#contactChecked.set(meterId, now);
    this.#contacting.add(meterId);
    try {
      const row = await this.#contactState(meterId);
      this.#current = Math.max(this.#current, Number(row.current));
      if (!leftAlone(row, {})) await this.catchUp(meterId);
    } finally {
      this.#contacting.delete(meterId);
    }
  }

  /**
   * The meter's push state, read with every other meter heard from in the same turn (ingest reports
   * a batch's outcomes together): one query for a batch of sets, not one per set.
   */
  #contactState(meterId: number): Promise<PushState> {
    let look = this.#look;
    if (!look) {
      const meterIds: number[] = [];
      const states = new Promise<PushState[]>((resolve, reject) =>
        queueMicrotask(() => {
          this.#look = undefined;
          this.#pushStates(meterIds).then(resolve, reject);
        }),
      );
      look = { meterIds, states };
      this.#look = look;
    }
    const at = look.meterIds.push(meterId) - 1;
    return look.states.then((rows) => rows[at]);
  }

  /** Each meter's acknowledged and pushed versions and the current one, in the order asked. */
  async #pushStates(meterIds: readonly number[]): Promise<PushState[]> {
    const rows = await this.#deps.db.query<PushState>(
      `SELECT b.acked_version, b.pushed_version,
              b.pushed_at > now() - make_interval(secs => $2) AS pushed_recently,
              (SELECT version FROM blacklist_state) AS current
         FROM unnest($1::bigint[]) WITH ORDINALITY AS m(id, i) LEFT JOIN blacklist_meters b ON b.meter_id = m.id
        ORDER BY m.i`,
      [meterIds, (this.#deps.resendAfterMs ?? 60_000) / 1000],
    );
    return rows.rows;
  }

  /** Ingest's stored records: a 'card-cloned' refusal enters the review queue. */
  async onStoredRecord(meterId: number, record: MeterRecord): Promise<void> {
    if (!isClonedCardRecord(record)) return;
    const uid = CLONED_UID.exec(record.data.detail)?.[1] ?? null;
    const card = record.data.card;
    await this.#deps.db.query(
      `INSERT INTO blacklist_review (meter_id, record_seq, seen_at, card_uid, card_token, card_last4, detail)
       VALUES ($1, $2, to_timestamp($3), $4, $5, $6, $7) ON CONFLICT (meter_id, record_seq) DO NOTHING`,
      [
        meterId,
        record.seq,
        record.time,
        uid,
        card ? Buffer.from(card.token).toString('hex') : null,
        card?.last4 ?? null,
        record.data.detail,
      ],
    );
  }

  async reviews(status?: ReviewItem['status']): Promise<ReviewItem[]> {
    const rows = await this.#deps.db.query<{
      id: string | number;
      meter_id: string | number;
      record_seq: string | number;
      seen_at: Date;
      card_uid: string | null;
      card_token: string | null;
      card_last4: string | null;
      detail: string;
      status: ReviewItem['status'];
    }>(
      `SELECT id, meter_id, record_seq, seen_at, card_uid, card_token, card_last4, detail, status
         FROM blacklist_review WHERE ($1::text IS NULL OR status = $1) ORDER BY id`,
      [status ?? null],
    );
    return rows.rows.map((r) => ({
      id: Number(r.id),
      meterId: Number(r.meter_id),
      recordSeq: Number(r.record_seq),
      seenAt: new Date(r.seen_at).toISOString(),
      cardUid: r.card_uid,
      token: r.card_token,
      last4: r.card_last4,
      detail: r.detail,
      status: r.status,
    }));
  }

  /**
   * An operator confirms a cloned-card report: the card (the token the report carries, or the
   * number or token of the genuine card with that UID, which the operator gives) is listed as
   * 'cloned'. Dismissing lists nothing.
   */
  async decide(
    id: number,
    decision: 'confirm' | 'dismiss',
    by: string,
    card: { cardNumber?: string; token?: string } = {},
  ): Promise<{ status: ReviewItem['status']; listed?: { token: string; version: number } }> {
    const item = (await this.reviews()).find((r) => r.id === id);
    if (!item) throw new BlacklistRefused(404, 'not-found', `no review ${id}`);
    if (item.status !== 'pending')
      throw new BlacklistRefused(409, 'decided', `review ${id} is already ${item.status}`);
    let listed: { token: string; version: number } | undefined;
    if (decision === 'confirm') {
      const given = card.cardNumber !== undefined || card.token !== undefined;
      if (!given && !item.token)
        throw new BlacklistRefused(
          400,
          'bad-card',
          'this report names only the UID: give the genuine card’s number or token',
          'cardNumber',
        );
      const added = await this.add(
        given ? { ...card, reason: 'cloned' } : { token: item.token ?? '', reason: 'cloned' },
        by,
      );
      listed = { token: added.token, version: added.version };
    }
    const status = decision === 'confirm' ? 'confirmed' : 'dismissed';
    await this.#deps.db.query(
      'UPDATE blacklist_review SET status = $2, decided_by = $3, decided_at = now() WHERE id = $1',
      [id, status, by],
    );
    return listed ? { status, listed } : { status };
  }
}
