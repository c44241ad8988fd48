// Charging management (43): prices with the tariff engine of protocol/tariff, the same one the
// platform uses. Two rules, as the seed names them:
// - the first-payment charging rule: the price at the meter of the service chosen on the buttons,
//   for a new session (under a non-cumulative tariff the time left by someone else is not
//   inherited);
// - the service charging rule: a renewal of a session (by phone, through the platform), which
//   continues its rate bands and counts towards its maximum stay.
// The tariff arrives in the meter's configuration (a flat rate is a tariff too: flatTariff) and is
// replaced by the platform's 0x85 downlink; the version applied is kept in preferences and
// acknowledged with a 0x05 uplink.
import type { Preferences } from '../../hal/preferences';
import { decodeCbor, encodeCbor } from '../../protocol/cbor';
import { ownBuffer } from '../../protocol/bytes';
import { ProtocolError } from '../../protocol/errors';
import {
  type BayMode,
  type BayModeWindow,
  type DurationRequest,
  decodeTariffPush,
  encodeTariffAck,
  type FlatRate,
  flatTariff,
  type Payer,
  type PriorPurchase,
  type Quote,
  type Refusal,
  TARIFF_ACK_UPLINK,
  TARIFF_DOWNLINK,
  Tariff,
  type TariffAck,
  type TariffDocument,
  TariffError,
  type TariffPush,
  validateTariff,
} from '../../protocol/tariff/index';
import type { EventBus } from '../bus';
import type { MeterEvents } from '../events';

/** A tap pays by card; the cards carry no user class yet, so class-limited entries are not theirs. */
const AT_THE_METER: Payer = Object.freeze({ method: 'card' });

export type { FlatRate };

const PREFS = 'tariff';

export interface ChargingOptions {
  /** The provisioned tariff (a document, or a flat rate written as one). */
  tariff: TariffDocument | FlatRate;
  preferences?: Preferences;
  bus?: EventBus<MeterEvents>;
  /** Sends the 0x05 acknowledgement (CommsUnit.send); absent on a meter without a link. */
  send?: (type: number, body: Uint8Array) => boolean;
}

function isFlatRate(value: TariffDocument | FlatRate): value is FlatRate {
  return 'perHour' in value;
}

export class ChargingUnit {
  #tariff: Tariff;
  readonly #o: ChargingOptions;
  /** Last version of each downlink kind applied (the tariff's own version for 'tariff'). */
  readonly #versions = new Map<string, number>();
  /** Bay modes set by the platform (0x85 'bays'), each with its window. */
  readonly #bayModes = new Map<number, BayModeWindow>();

  constructor(options: ChargingOptions | TariffDocument | FlatRate) {
    this.#o = 'tariff' in options ? options : { tariff: options };
    const given = this.#o.tariff;
    this.#tariff = new Tariff(isFlatRate(given) ? flatTariff(given) : validateTariff(given));
    // What the platform pushed wins over the tariff built in, unless that is a newer version of it.
    const saved = this.#loadSaved();
    if (saved && (saved.doc.id !== this.#tariff.doc.id || saved.version > this.#tariff.version))
      this.#tariff = saved;
    this.#versions.set('tariff', this.#tariff.version);
    this.#loadBayModes();
    const { bus } = this.#o;
    bus?.on('downlink', ({ type, body }) => {
      if (type === TARIFF_DOWNLINK) this.applyDownlink(body);
    });
  }

  get tariff(): Tariff {
    return this.#tariff;
  }

  get currency(): number {
    return this.#tariff.currency;
  }

  /** Where a new session's paid time starts: now, or after the time left on the bay when cumulative. */
  #sessionStart(nowSeconds: number, bayPaidUntil: number): number {
    return this.#tariff.doc.nonCumulative ? nowSeconds : Math.max(nowSeconds, bayPaidUntil);
  }

  /** The platform's mode for a bay at `nowSeconds` (epoch s), when one is in its window. */
  bayMode(bayId: number, nowSeconds: number): BayMode | undefined {
    const w = this.#bayModes.get(bayId);
    if (!w) return undefined;
    if (w.start !== undefined && nowSeconds < w.start) return undefined;
    if (w.end !== undefined && nowSeconds >= w.end) return undefined;
    return w.mode === 'available' ? undefined : w.mode;
  }

  /** Nothing is sold on a bay the platform suspended, closed or made free, while its mode holds. */
  #modeRefusal(bayId: number, nowSeconds: number): Refusal | undefined {
    const mode = this.bayMode(bayId, nowSeconds);
    if (mode === 'suspended')
      return { ok: false, reason: 'restricted', message: 'Suspended for works. No sale.' };
    if (mode === 'no-parking') return { ok: false, reason: 'restricted', message: 'No parking. No sale.' };
    if (mode === 'unavailable') return { ok: false, reason: 'no-sale', message: 'Unavailable. No sale.' };
    if (mode === 'free') return { ok: false, reason: 'free', message: 'Free parking: no payment needed.' };
    return undefined;
  }

  /**
   * First-payment rule: `minutes` bought at the meter for a new session on the bay. `history` is the
   * card's earlier purchases at this meter (PurchaseHistory), once the card is known: the tariff's
   * maximum price per period and "no return" rules need it; before the tap the price is without it.
   */
  firstPayment(
    bayId: number,
    nowSeconds: number,
    minutes: number,
    bayPaidUntil = 0,
    history?: readonly PriorPurchase[],
  ): Quote {
    const refused = this.#modeRefusal(bayId, nowSeconds);
    if (refused) return refused;
    const request: DurationRequest = {
      bay: bayId,
      start: this.#sessionStart(nowSeconds, bayPaidUntil),
      minutes,
      payer: AT_THE_METER,
    };
    if (history) request.history = history;
    return this.#tariff.quoteDuration(request);
  }

  /** Service charging rule: a renewal adding `minutes` to a session that has `paidMinutes` already. */
  renewal(bayId: number, nowSeconds: number, paidUntil: number, paidMinutes: number, minutes: number): Quote {
    const refused = this.#modeRefusal(bayId, nowSeconds);
    if (refused) return refused;
    return this.#tariff.quoteDuration({
      bay: bayId,
      start: Math.max(nowSeconds, paidUntil),
      minutes,
      paidMinutes,
      payer: AT_THE_METER,
    });
  }

  /** The most a new session can buy now (a refusal when nothing can be bought). */
  maxMinutes(bayId: number, nowSeconds: number, bayPaidUntil = 0): number | Refusal {
    const refused = this.#modeRefusal(bayId, nowSeconds);
    if (refused) return refused;
    return this.#tariff.maxMinutes(bayId, this.#sessionStart(nowSeconds, bayPaidUntil), 0, AT_THE_METER);
  }

  /** The duration the buttons start from: the minimum purchase, or less when less is left. */
  initialMinutes(bayId: number, nowSeconds: number, bayPaidUntil = 0): number {
    const t = this.#tariff;
    const least = Math.max(t.stepMinutes, t.doc.minimum?.minutes ?? t.stepMinutes);
    const cap = this.maxMinutes(bayId, nowSeconds, bayPaidUntil);
    return typeof cap === 'number' ? Math.min(least, cap) : least;
  }

  /** The next duration on the up/down buttons: whole steps, within the minimum and what can be bought. */
  step(bayId: number, nowSeconds: number, minutes: number, direction: 1 | -1, bayPaidUntil = 0): number {
    const t = this.#tariff;
    const step = t.stepMinutes;
    const least = this.initialMinutes(bayId, nowSeconds, bayPaidUntil);
    const cap = this.maxMinutes(bayId, nowSeconds, bayPaidUntil);
    const most = typeof cap === 'number' ? cap : least;
    const next =
      direction > 0 ? Math.floor(minutes / step) * step + step : Math.ceil(minutes / step) * step - step;
    return Math.min(most, Math.max(least, next));
  }

  /** Handles a 0x85 body: applies a newer version, acknowledges what it holds (or why it refused). */
  applyDownlink(body: Uint8Array): TariffAck {
    let push: TariffPush;
    try {
      push = decodeTariffPush(body);
    } catch (error) {
      const why = error instanceof ProtocolError ? error.message : String(error);
      this.#o.bus?.emit('tariff-refused', { kind: 'unknown', version: -1, reason: why });
      return { kind: 'tariff', version: 0, ok: false, why };
    }
    const held = this.#versions.get(push.kind) ?? -1;
    // A tariff names itself: another tariff (the meter moved to another zone) is applied whatever
    // its version; the same tariff only in a newer version. Its acknowledgement names the tariff.
    const heldId = this.#tariff.doc.id;
    const given = push.kind === 'tariff' ? push.tariff.id : undefined;
    const pushedId = typeof given === 'string' && given.length > 0 ? given : undefined;
    const named = (id: string | undefined): Pick<TariffAck, 'tariff'> =>
      push.kind === 'tariff' && id !== undefined ? { tariff: id } : {};
    let ack: TariffAck = { kind: push.kind, version: Math.max(held, 0), ok: true, ...named(heldId) };
    if (push.version > held || (push.kind === 'tariff' && pushedId !== heldId)) {
      try {
        this.#apply(push);
        this.#versions.set(push.kind, push.version);
        ack = { kind: push.kind, version: push.version, ok: true, ...named(pushedId) };
      } catch (error) {
        const why = error instanceof TariffError ? error.message : String(error);
        ack = { kind: push.kind, version: push.version, ok: false, why, ...named(pushedId) };
        this.#o.bus?.emit('tariff-refused', { kind: push.kind, version: push.version, reason: why });
      }
    }
    this.#o.send?.(TARIFF_ACK_UPLINK, encodeTariffAck(ack));
    return ack;
  }

  #apply(push: TariffPush): void {
    const { bus, preferences } = this.#o;
    if (push.kind === 'tariff') {
      const doc = validateTariff(push.tariff);
      if (doc.version !== push.version)
        throw new TariffError('version', `is ${doc.version}, the downlink says ${push.version}`);
      const tariff = new Tariff(doc);
      this.#tariff = tariff;
      preferences?.set(PREFS, 'doc', ownBuffer(encodeCbor(doc)));
      bus?.emit('tariff-applied', { id: doc.id, version: doc.version });
    } else if (push.kind === 'message') {
      const message: MeterEvents['platform-message'] = { text: push.text };
      if (push.start !== undefined) message.from = push.start;
      if (push.until !== undefined) message.until = push.until;
      bus?.emit('platform-message', message);
    } else {
      const next = new Map(this.#bayModes);
      for (const [id, entry] of Object.entries(push.bays)) {
        const bayId = Number(id);
        if (!Number.isInteger(bayId) || bayId < 0) throw new TariffError('bays', `${id} is not a bay id`);
        next.set(bayId, typeof entry === 'string' ? { mode: entry } : entry);
      }
      // Kept before they take effect: a power cut leaves the old modes or the new, never half.
      const stored: Record<string, unknown> = {};
      for (const [bayId, w] of next) {
        const entry: Record<string, unknown> = { m: w.mode };
        if (w.start !== undefined) entry.start = w.start;
        if (w.end !== undefined) entry.end = w.end;
        stored[String(bayId)] = entry;
      }
      preferences?.set(PREFS, 'bays', ownBuffer(encodeCbor(stored)));
      this.#bayModes.clear();
      for (const [bayId, w] of next) this.#bayModes.set(bayId, w);
      bus?.emit('bay-modes-changed', { bayIds: Object.keys(push.bays).map(Number) });
    }
  }

  #loadBayModes(): void {
    const saved = this.#o.preferences?.get(PREFS, 'bays');
    if (!(saved instanceof ArrayBuffer)) return;
    try {
      const m = decodeCbor(new Uint8Array(saved)) as Record<
        string,
        { m: BayMode; start?: number; end?: number }
      >;
      for (const [id, w] of Object.entries(m)) {
        const window: BayModeWindow = { mode: w.m };
        if (typeof w.start === 'number') window.start = w.start;
        if (typeof w.end === 'number') window.end = w.end;
        this.#bayModes.set(Number(id), window);
      }
    } catch {
      this.#bayModes.clear(); // a damaged copy: no modes until the platform pushes again
    }
  }

  #loadSaved(): Tariff | undefined {
    const saved = this.#o.preferences?.get(PREFS, 'doc');
    if (!(saved instanceof ArrayBuffer)) return undefined;
    try {
      return new Tariff(validateTariff(decodeCbor(new Uint8Array(saved))));
    } catch {
      return undefined; // a damaged copy: the provisioned tariff serves until the platform pushes again
    }
  }
}
