// Notices: display messages and bay modes scheduled for a target (listed meters, an area, the
// fleet) with a window, pushed as 0x85 'message' / 'bays' downlinks (protocol/tariff/messages.ts)
// and acknowledged per meter by 0x05. A cancellation is a push of its own: an empty message, or the
// notice's bays back to 'available' — sent only to meters that got nothing newer of that kind since.
import { RequestRefused } from '../core/errors';
import { type BayMode, encodeTariffPush, TARIFF_DOWNLINK, type TariffAck } from '../../protocol/tariff';
import type { Database, Queryable } from '../core/db';
import { describeTarget, type MeterTarget, resolveTarget } from '../fleet/targets';

export type NoticeContent = { text: string } | { bays: Record<string, BayMode> };

export interface NoticeRequest {
  target: MeterTarget;
  content: NoticeContent;
  /** Epoch seconds; absent: from now. */
  start?: number;
  /** Epoch seconds; absent: until cancelled. */
  end?: number;
}

export interface NoticeMeterView {
  meterId: number;
  version: number;
  cancels: boolean;
  acked: boolean | null;
  why: string | null;
}

export interface NoticeView {
  id: number;
  kind: 'message' | 'bays';
  text: string | null;
  bays: Record<string, BayMode> | null;
  start: number | null;
  end: number | null;
  target: string;
  createdBy: string;
  cancelled: boolean;
  meters: NoticeMeterView[];
}

export class NoticeRefused extends RequestRefused {
  override readonly name: string = 'NoticeRefused';
}

type Sent = { meterId: number; downlinkSeq?: number; error?: string };

export class NoticeService {
  readonly #db: Database;
  readonly #send: (meterId: number, type: number, body: Uint8Array) => Promise<number>;

  constructor(
    db: Database,
    sendDownlink: (meterId: number, type: number, body: Uint8Array) => Promise<number>,
  ) {
    this.#db = db;
    this.#send = sendDownlink;
  }

  /** Stores the notice and pushes it to every meter of the target. */
  async schedule(request: NoticeRequest, createdBy: string): Promise<{ id: number; meters: Sent[] }> {
    const { start, end, content } = request;
    if (start !== undefined && end !== undefined && end <= start)
      throw new NoticeRefused(400, 'bad-window', 'end is not after start', 'end');
    if ('bays' in content) {
      for (const id of Object.keys(content.bays))
        if (!/^\d{1,9}$/.test(id))
          throw new NoticeRefused(400, 'bad-bay', `${id} is not a bay id`, `bays.${id}`);
    }
    const meterIds = await resolveTarget(this.#db, request.target);
    const kind = 'text' in content ? 'message' : 'bays';
    const { rows } = await this.#db.query<{ id: number }>(
      `INSERT INTO notices (kind, text, bay_modes, starts_at, ends_at, target, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
      [
        kind,
        'text' in content ? content.text : null,
        'bays' in content ? JSON.stringify(content.bays) : null,
        start ?? null,
        end ?? null,
        describeTarget(request.target),
        createdBy,
      ],
    );
    const id = Number(rows[0].id);
    const body =
      'text' in content
        ? encodeTariffPush({ kind: 'message', version: id, text: content.text, start, until: end })
        : encodeTariffPush({
            kind: 'bays',
            version: id,
            bays: Object.fromEntries(
              Object.entries(content.bays).map(([bay, mode]) => [bay, { mode, start, end }]),
            ),
          });
    return { id, meters: await this.#pushAll(meterIds, id, id, false, body) };
  }

  async #pushAll(meterIds: number[], noticeId: number, version: number, cancels: boolean, body: Uint8Array) {
    const sent: Sent[] = [];
    for (const meterId of meterIds) {
      // The row first: the meter's acknowledgement can come back before sendDownlink resolves.
      await this.#db.query(
        `INSERT INTO meter_notices (meter_id, version, notice_id, cancels) VALUES ($1, $2, $3, $4)
         ON CONFLICT (meter_id, version) DO NOTHING`,
        [meterId, version, noticeId, cancels],
      );
      try {
        const downlinkSeq = await this.#send(meterId, TARIFF_DOWNLINK, body);
        await this.#db.query(
          'UPDATE meter_notices SET downlink_seq = $3 WHERE meter_id = $1 AND version = $2',
          [meterId, version, downlinkSeq],
        );
        sent.push({ meterId, downlinkSeq });
      } catch (error) {
        await this.#db.query('DELETE FROM meter_notices WHERE meter_id = $1 AND version = $2', [
          meterId,
          version,
        ]);
        sent.push({ meterId, error: (error as Error).message });
      }
    }
    return sent;
  }

  /**
   * Cancels a notice: its meters that got no newer push of the same kind are sent an empty message,
   * or its bays back to 'available'. A notice already cancelled is refused (409).
   */
  async cancel(id: number, by: string): Promise<{ id: number; version: number; meters: Sent[] }> {
    const notice = await this.#row(id);
    if (!notice) throw new NoticeRefused(404, 'unknown-notice', `no notice ${id}`);
    if (notice.cancelled_at !== null)
      throw new NoticeRefused(409, 'already-cancelled', `notice ${id} is cancelled`);
    const { rows } = await this.#db.query<{ version: number }>(
      `UPDATE notices SET cancelled_at = now(), cancelled_by = $2, cancel_version = nextval('notice_versions')
        WHERE id = $1 AND cancelled_at IS NULL RETURNING cancel_version AS version`,
      [id, by],
    );
    if (rows.length === 0) throw new NoticeRefused(409, 'already-cancelled', `notice ${id} is cancelled`);
    const version = Number(rows[0].version);
    const meters = await this.#db.query<{ meter_id: number }>(
      `SELECT DISTINCT m.meter_id FROM meter_notices m WHERE m.notice_id = $1 AND NOT m.cancels
          AND NOT EXISTS (SELECT 1 FROM meter_notices n JOIN notices o ON o.id = n.notice_id
                           WHERE n.meter_id = m.meter_id AND n.version > m.version AND o.kind = $2)
        ORDER BY m.meter_id`,
      [id, notice.kind],
    );
    const body =
      notice.kind === 'message'
        ? encodeTariffPush({ kind: 'message', version, text: '' })
        : encodeTariffPush({
            kind: 'bays',
            version,
            bays: Object.fromEntries(
              Object.keys(notice.bay_modes ?? {}).map((bay) => [bay, 'available' as const]),
            ),
          });
    return {
      id,
      version,
      meters: await this.#pushAll(
        meters.rows.map((r) => Number(r.meter_id)),
        id,
        version,
        true,
        body,
      ),
    };
  }

  /** Records a meter's 0x05 for a 'message' or 'bays' push (in the transaction that accepts the frame). */
  async onAck(meterId: number, ack: TariffAck, tx: Queryable): Promise<void> {
    await tx.query(
      'UPDATE meter_notices SET acked_ok = $3, acked_why = $4, acked_at = now() WHERE meter_id = $1 AND version = $2',
      [meterId, ack.version, ack.ok, ack.why ?? null],
    );
  }

  async #row(id: number) {
    const { rows } = await this.#db.query<{
      id: number;
      kind: 'message' | 'bays';
      text: string | null;
      bay_modes: Record<string, BayMode> | null;
      starts_at: number | null;
      ends_at: number | null;
      target: string;
      created_by: string;
      cancelled_at: unknown;
    }>('SELECT * FROM notices WHERE id = $1', [id]);
    return rows[0];
  }

  async get(id: number): Promise<NoticeView | undefined> {
    const r = await this.#row(id);
    if (!r) return undefined;
    const acks = await this.#db.query<{
      meter_id: number;
      version: number;
      cancels: boolean;
      acked_ok: boolean | null;
      acked_why: string | null;
    }>(
      'SELECT meter_id, version, cancels, acked_ok, acked_why FROM meter_notices WHERE notice_id = $1 ORDER BY meter_id, version',
      [id],
    );
    return {
      id: Number(r.id),
      kind: r.kind,
      text: r.text,
      bays: r.bay_modes,
      start: r.starts_at === null ? null : Number(r.starts_at),
      end: r.ends_at === null ? null : Number(r.ends_at),
      target: r.target,
      createdBy: r.created_by,
      cancelled: r.cancelled_at !== null,
      meters: acks.rows.map((a) => ({
        meterId: Number(a.meter_id),
        version: Number(a.version),
        cancels: a.cancels,
        acked: a.acked_ok,
        why: a.acked_why,
      })),
    };
  }

  /** Notices newest first; `active` leaves out the cancelled. */
  async list(options: { active?: boolean; limit?: number } = {}): Promise<NoticeView[]> {
    const { rows } = await this.#db.query<{ id: number }>(
      `SELECT id FROM notices WHERE NOT $1::boolean OR cancelled_at IS NULL ORDER BY id DESC LIMIT $2`,
      [options.active ?? false, options.limit ?? 100],
    );
    const out: NoticeView[] = [];
    for (const r of rows) {
      const view = await this.get(Number(r.id));
      if (view) out.push(view);
    }
    return out;
  }
}
