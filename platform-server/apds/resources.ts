// ParkLink's data in the APDS shapes (ISO/TS 5206-1, the parkingdata/spec OpenAPI document):
// - places: each meter area a parkingPlace (layer 0, an on-street zone), each meter an
//   identifiedArea (layer 1, the bays it sells), each bay a space (layer 2), with occupancy from the
//   bay sensors (bay_occupancy);
// - rates: each tariff version a RateTable, one RateLineCollection per rate table of the document;
// - sessions: meter transactions and pay-by-phone sessions (renewals as further segments), and the
//   sessions third-party apps wrote;
// - assigned rights: the right each payment bought, and those apps wrote;
// The bay sensors' arrivals and departures are APDS observations as vehicle presences at located
// meters (observations.ts); the export also carries them as ParkLink's own list (occupancyChanges).
// Identifiers: area:<name>, meter:<id>, bay:<meter>:<bay>, tariff:<id>, tx:<meter>:<seq>,
// phone:<id>, sensor:<meter>:<bay>:<frame>; records a third party wrote keep their own id.
// APDS versions start at 1: a tariff's version v is RateTable version v + 1.
import type { Queryable } from '../core/db';
import type { Tier, TariffDocument } from '../../protocol/tariff/types';

/** ISO 4217 numeric → alphabetic for the currencies a tariff names. */
const CURRENCY: Record<number, string> = {
  826: 'GBP',
  978: 'EUR',
  840: 'USD',
  756: 'CHF',
  752: 'SEK',
  578: 'NOK',
  208: 'DKK',
  124: 'CAD',
  36: 'AUD',
};
export function currencyCode(numeric: number): string {
  return CURRENCY[numeric] ?? 'XXX';
}

type Json = Record<string, unknown>;
const en = (text: string) => [{ language: 'en', string: text }];
const iso = (d: Date | string | number) => new Date(typeof d === 'number' ? d * 1000 : d).toISOString();
const minutesDuration = (minutes: number) => `PT${minutes}M`;

export const placeId = {
  area: (name: string) => `area:${name}`,
  meter: (id: number) => `meter:${id}`,
  bay: (meter: number, bay: number) => `bay:${meter}:${bay}`,
};

interface MeterRow {
  id: number;
  name: string;
  area: string | null;
  created_at: Date;
  tariff_id: string | null;
  tariff_version: number | null;
}
interface BayRow {
  meter_id: number;
  bay_id: number;
  occupied: boolean;
  since: Date | null;
  paid: boolean;
  updated_at: Date;
}

/** Every element of the place hierarchy, areas first, then meters, then bays. */
export async function places(db: Queryable, timeZone: string): Promise<Json[]> {
  const meters = (
    await db.query<MeterRow>(
      `SELECT m.id, m.name, m.area, m.created_at, t.acked_tariff_id AS tariff_id, t.acked_version AS tariff_version
         FROM meters m LEFT JOIN meter_tariffs t ON t.meter_id = m.id AND t.acked_ok
        ORDER BY m.id`,
    )
  ).rows;
  const bays = (await db.query<BayRow>('SELECT * FROM bay_occupancy ORDER BY meter_id, bay_id')).rows;
  const out: Json[] = [];
  const areas = new Map<string, MeterRow[]>();
  for (const m of meters) if (m.area) areas.set(m.area, [...(areas.get(m.area) ?? []), m]);
  for (const [name, members] of [...areas].sort(([a], [b]) => a.localeCompare(b))) {
    const memberBays = bays.filter((b) => members.some((m) => m.id === b.meter_id));
    out.push({
      id: placeId.area(name),
      version: 1,
      name: en(name),
      layer: 0,
      type: 'parkingPlace',
      timeZone,
      hierarchyElementRecord: { creationTime: iso(members[0].created_at) },
      childIds: members.map((m) => ({ id: placeId.meter(m.id), version: 1 })),
      ...(memberBays.length > 0 ? { occupancyLevel: occupancy(memberBays) } : {}),
    });
  }
  for (const m of meters) {
    const own = bays.filter((b) => b.meter_id === m.id);
    out.push({
      id: placeId.meter(m.id),
      version: 1,
      name: en(m.name),
      layer: 1,
      type: 'identifiedArea',
      hierarchyElementRecord: { creationTime: iso(m.created_at) },
      ...(m.area ? { parentId: { id: placeId.area(m.area), version: 1 } } : {}),
      childIds: own.map((b) => ({ id: placeId.bay(b.meter_id, b.bay_id), version: 1 })),
      ...(m.tariff_id !== null && m.tariff_version !== null
        ? { rightSpecifications: [{ id: `tariff:${m.tariff_id}`, version: m.tariff_version + 1 }] }
        : {}),
      ...(own.length > 0 ? { occupancyLevel: occupancy(own) } : {}),
    });
  }
  for (const b of bays) {
    out.push({
      id: placeId.bay(b.meter_id, b.bay_id),
      version: 1,
      name: en(`Bay ${b.bay_id}`),
      layer: 2,
      type: 'space',
      hierarchyElementRecord: { creationTime: iso(b.updated_at) },
      parentId: { id: placeId.meter(b.meter_id), version: 1 },
      spaceId: { className: 'ParkLinkBay', id: `${b.meter_id}:${b.bay_id}` },
      detection: 'spaceSensor',
      occupancyLevel: occupancy([b]),
    });
  }
  return out;
}

/**
 * APDS OccupancyLevel, whose indicator is a ReferencedCodeListEntry: the entry 'percent-occupied'
 * of ParkLink's code list, its value the share of sensed bays occupied ("67").
 */
function occupancy(bays: readonly BayRow[]): Json {
  const occupied = bays.filter((b) => b.occupied).length;
  return {
    occupancyIndicator: {
      codeListId: { id: 'parklink-occupancy', version: 1 },
      codeListEntryId: { className: 'ParkLinkCodeListEntry', id: 'percent-occupied' },
      entryDefinedValue: String(Math.round((occupied / bays.length) * 100)),
    },
  };
}

/** Each tariff version as an APDS RateTable. */
export async function rates(db: Queryable): Promise<Json[]> {
  const rows = (
    await db.query<{ id: string; version: number; document: TariffDocument; created_at: Date }>(
      'SELECT id, version, document, created_at FROM tariffs ORDER BY id, version',
    )
  ).rows;
  return rows.map((r) => rateTable(r.document, r.created_at));
}

export function rateTable(doc: TariffDocument, createdAt: Date): Json {
  const currency = currencyCode(doc.currency);
  const collections = Object.entries(doc.rates).map(([name, tiers], i) => {
    // A flat amount valid until a time: the collection resets at that local time (relative to the
    // day, not to the session's start); a cap per period: the most the collection charges, reset at
    // the cap's time. "No return" has no place in an APDS rate (docs/apds.md).
    const until = validUntilOf(tiers);
    return {
      applicableCurrency: currency,
      collectionSequence: i + 1,
      minTime: minutesDuration(doc.minimum?.minutes ?? 0),
      maxTime: minutesDuration(until ? 24 * 60 : maxMinutesOf(doc, name, tiers)),
      relativeTimes: until === undefined,
      resetTime: until ?? doc.maxPrice?.resetAt ?? '00:00',
      taxIncluded: doc.tax?.included ?? true,
      ...(doc.tax ? { taxRate: doc.tax.percent } : {}),
      validStart: iso(createdAt),
      ...(doc.minimum?.amount !== undefined ? { minValueCollection: doc.minimum.amount / 100 } : {}),
      ...(doc.maxPrice ? { maxValueCollection: doc.maxPrice.amount / 100 } : {}),
      rateLines: tiers.map((tier, t) => rateLine(tier, t, tiers)),
    };
  });
  return {
    id: `tariff:${doc.id}`,
    version: doc.version + 1,
    rateTableName: en(doc.id),
    rateTableID: en(`${doc.id} v${doc.version}`),
    validityStart: iso(createdAt),
    rateType: 'hourly',
    availability: 'public',
    activeTimes: activeTimes(doc),
    rateLineCollections: collections,
  };
}

const DAY_NAMES: Record<string, string> = {
  mon: 'monday',
  tue: 'tuesday',
  wed: 'wednesday',
  thu: 'thursday',
  fri: 'friday',
  sat: 'saturday',
  sun: 'sunday',
};

/** Each tariff version as an APDS RightSpecification: where it applies, when, for whom, at which rate table. */
export async function rightSpecifications(db: Queryable): Promise<Json[]> {
  const rows = (
    await db.query<{ document: TariffDocument; created_at: Date }>(
      'SELECT document, created_at FROM tariffs ORDER BY id, version',
    )
  ).rows;
  const held = (
    await db.query<{ meter_id: number; tariff_id: string; acked_version: number }>(
      'SELECT meter_id, acked_tariff_id AS tariff_id, acked_version FROM meter_tariffs WHERE acked_ok ORDER BY meter_id',
    )
  ).rows;
  return rows.map((r) => {
    const meters = held.filter(
      (h) => h.tariff_id === r.document.id && h.acked_version === r.document.version,
    );
    return rightSpecification(
      r.document,
      r.created_at,
      meters.map((m) => m.meter_id),
    );
  });
}

/**
 * The timetable's charged entries become the specification's valid periods (days and local times;
 * the holiday entries and date ranges are not carried) and its rate eligibilities, in the
 * timetable's order of precedence; an entry's payment methods and user classes are named in its
 * eligibility.
 */
export function rightSpecification(doc: TariffDocument, createdAt: Date, meters: readonly number[]): Json {
  const table = { id: `tariff:${doc.id}`, version: doc.version + 1 };
  const charged = doc.timetable.filter((e) => e.mode === 'charged');
  const who = (e: (typeof charged)[number]) => {
    const parts = [
      e.eligible?.methods ? `paying by ${e.eligible.methods.join(' or ')}` : '',
      e.eligible?.classes ? `holding ${e.eligible.classes.join(' or ')}` : '',
    ].filter((p) => p !== '');
    return parts.length > 0 ? parts.join(', ') : 'everyone';
  };
  return {
    ...table,
    description: en(`Paid parking under tariff ${doc.id} version ${doc.version}`),
    type: 'oneTimeUseParking',
    // The city's parking operator as ParkLink runs it; paid time stays with the bay unless the
    // tariff ties it to the vehicle.
    issuer: { id: 'parklink-operator', version: 1 },
    transferable: doc.nonTransferable !== true,
    ...(meters.length > 0
      ? { hierarchyElements: meters.map((m) => ({ id: placeId.meter(m), version: 1 })) }
      : {}),
    rateEligibility: charged.map((e, i) => ({
      id: `${table.id}:entry:${i + 1}`,
      version: 1,
      priority: i + 1,
      eligibility: { id: `${table.id}:entry:${i + 1}:eligibility`, version: 1, eligibilityName: en(who(e)) },
      rateTable: table,
    })),
    validity: {
      validityStatus: 'definedByValidityTimeSpec',
      validityTimeSpecification: {
        overallStartTime: iso(createdAt),
        validPeriods: charged.map((e) => ({
          periodName: en(`${e.rate ?? 'charged'} ${e.from}-${e.to}`),
          recurringDayWeekMonthPeriod: [
            { applicableDay: e.days.filter((d) => d !== 'hol').map((d) => DAY_NAMES[d]) },
          ],
          recurringTimePeriodOfDay: [{ startTimeOfPeriod: e.from, endTimeOfPeriod: e.to }],
        })),
      },
    },
  };
}

function maxMinutesOf(doc: TariffDocument, name: string, tiers: readonly Tier[]): number {
  const stays = doc.timetable.filter((e) => e.rate === name && e.maxStayMinutes !== undefined);
  const entryMax = stays.length > 0 ? Math.max(...stays.map((e) => e.maxStayMinutes ?? 0)) : undefined;
  const last = tiers[tiers.length - 1]?.upTo;
  return entryMax ?? doc.maxStayMinutes ?? last ?? 24 * 60;
}

/** The local time a rate's flat amount is valid until (a FlatUntil band), if it is one. */
function validUntilOf(tiers: readonly Tier[]): string | undefined {
  const first = tiers[0];
  return first && 'validUntil' in first ? first.validUntil : undefined;
}

function rateLine(tier: Tier, index: number, tiers: readonly Tier[]): Json {
  if ('validUntil' in tier && tier.validUntil !== undefined)
    return {
      description: `flat ${tier.flat / 100} valid until ${tier.validUntil}`,
      sequence: index + 1,
      rateLineType: 'flatRate',
      value: tier.flat / 100,
      usageCondition: 'once',
    };
  const from = index === 0 ? 0 : (tiers[index - 1].upTo ?? 0);
  const bounds = {
    durationStart: minutesDuration(from),
    ...(tier.upTo !== undefined ? { durationEnd: minutesDuration(tier.upTo) } : {}),
  };
  if ('flat' in tier)
    return { ...bounds, sequence: index + 1, rateLineType: 'flatRateTier', value: tier.flat / 100 };
  return {
    ...bounds,
    sequence: index + 1,
    rateLineType: 'incrementingRate',
    incrementPeriod: tier.prorata ? 'PT1S' : minutesDuration(tier.per),
    value: tier.prorata ? tier.price / 100 / (tier.per * 60) : tier.price / 100,
  };
}

/** The timetable's charged periods as ISO 8601 durations of a day ("from 08:00 for PT10H"). */
function activeTimes(doc: TariffDocument): string[] {
  const out = new Set<string>();
  for (const e of doc.timetable) {
    if (e.mode !== 'charged') continue;
    const [fh, fm] = e.from.split(':').map(Number);
    const [th, tm] = e.to.split(':').map(Number);
    let minutes = th * 60 + tm - (fh * 60 + fm);
    if (minutes <= 0) minutes += 24 * 60;
    out.add(minutesDuration(minutes));
  }
  return out.size > 0 ? [...out] : ['PT0M'];
}

interface TxRow {
  meter_id: number;
  seq: number;
  bay_id: number;
  minutes: number;
  paid_from: Date;
  paid_until: Date;
  charge: number;
  currency: number;
  card_type: number;
}
interface PhoneRow {
  id: number;
  meter_id: number;
  bay_id: number;
  tx_seq: number;
  paid_from: Date;
  paid_until: Date;
  paid_minutes: number;
  first_charge: number;
  currency: number;
  status: string;
  created_at: Date;
  ended_at: Date | null;
}
interface RenewalRow {
  id: string;
  session_id: number;
  minutes: number;
  charge: number;
  currency: number;
  applied_at: Date | null;
  paid_until: Date | null;
}

export interface SessionsAndRights {
  sessions: Json[];
  rights: Json[];
}

const money = (minor: number, currency: number) => ({
  currencyType: currencyCode(currency),
  currencyValue: minor / 100,
});

/**
 * Meter transactions and phone sessions (with their applied renewals) as Sessions and
 * AssignedRights; `only` narrows it to these payment records (meter ids and record seqs, pairwise).
 */
export async function meterSessions(
  db: Queryable,
  only?: { meterIds: readonly number[]; seqs: readonly number[] },
): Promise<SessionsAndRights> {
  const payments = 'SELECT * FROM unnest($1::bigint[], $2::bigint[])';
  const narrow = only ? ` WHERE (meter_id, tx_seq) IN (${payments})` : '';
  const params = only ? [only.meterIds, only.seqs] : [];
  const phone = (await db.query<PhoneRow>(`SELECT * FROM phone_sessions${narrow} ORDER BY id`, params)).rows;
  const renewals = (
    await db.query<RenewalRow>(
      `SELECT id, session_id, minutes, charge, currency, applied_at, paid_until FROM renewals
        WHERE status = 'applied' AND session_id = ANY($1::bigint[]) ORDER BY applied_at, id`,
      [phone.map((p) => p.id)],
    )
  ).rows;
  const tx = (
    await db.query<TxRow>(
      `SELECT meter_id, seq, bay_id, minutes, paid_from, paid_until, charge, currency, card_type
         FROM transactions${only ? ` WHERE (meter_id, seq) IN (${payments})` : ''} ORDER BY meter_id, seq`,
      params,
    )
  ).rows;
  const held = new Map(
    (
      await db.query<{ meter_id: number; tariff_id: string; acked_version: number }>(
        `SELECT meter_id, acked_tariff_id AS tariff_id, acked_version FROM meter_tariffs WHERE acked_ok${only ? ' AND meter_id = ANY($1::bigint[])' : ''}`,
        only ? [only.meterIds] : [],
      )
    ).rows.map((r) => [r.meter_id, { id: `tariff:${r.tariff_id}`, version: r.acked_version + 1 }]),
  );
  const paired = new Set(phone.map((p) => `${p.meter_id}:${p.tx_seq}`));
  const sessions: Json[] = [];
  const rights: Json[] = [];
  const right = (
    id: string,
    minutes: number,
    charge: number,
    currency: number,
    issued: Date,
    expiry: Date,
    meter: number,
  ) => {
    rights.push({
      id,
      version: 1,
      rightHolder: {},
      // The tariff the meter held (its rate table); a meter that acknowledged none names itself.
      rightSpecification: held.get(meter) ?? { id: placeId.meter(meter), version: 1 },
      issuanceTime: iso(issued),
      expiry: iso(expiry),
      totalMinutes: minutes,
      totalRightValue: money(charge, currency),
      issueMethod: 'electronic',
    });
    return { id, version: 1 };
  };
  const segment = (id: string, from: Date, to: Date, rightRef: Json, meter: number, bay: number) => ({
    id,
    version: 1,
    actualStart: iso(from),
    actualEnd: iso(to),
    assignedRight: rightRef,
    validationType: ['ticket'],
    spaceId: { className: 'ParkLinkBay', id: `${meter}:${bay}` },
  });
  for (const t of tx) {
    if (paired.has(`${t.meter_id}:${t.seq}`)) continue;
    const id = `tx:${t.meter_id}:${t.seq}`;
    const ref = right(
      `right:${id}`,
      t.minutes,
      Number(t.charge),
      t.currency,
      t.paid_from,
      t.paid_until,
      t.meter_id,
    );
    sessions.push({
      id,
      version: 1,
      actualStart: iso(t.paid_from),
      actualEnd: iso(t.paid_until),
      initiator: { id: placeId.meter(t.meter_id), version: 1 },
      identifiedCredentials: [bayCredential(t.meter_id, t.bay_id)],
      hierachyElement: { id: placeId.bay(t.meter_id, t.bay_id), version: 1 },
      segments: [segment(`${id}:1`, t.paid_from, t.paid_until, ref, t.meter_id, t.bay_id)],
    });
  }
  for (const p of phone) {
    const id = `phone:${p.id}`;
    const first = right(
      `right:${id}`,
      p.paid_minutes,
      Number(p.first_charge),
      p.currency,
      p.created_at,
      p.paid_until,
      p.meter_id,
    );
    const segs = [segment(`${id}:1`, p.paid_from, p.paid_until, first, p.meter_id, p.bay_id)];
    for (const r of renewals.filter((r) => r.session_id === p.id)) {
      const at = r.applied_at ?? p.paid_from;
      const until = r.paid_until ?? p.paid_until;
      const ref = right(
        `right:renewal:${r.id}`,
        r.minutes,
        Number(r.charge),
        r.currency,
        at,
        until,
        p.meter_id,
      );
      segs.push(segment(`${id}:${segs.length + 1}`, at, until, ref, p.meter_id, p.bay_id));
    }
    sessions.push({
      id,
      version: segs.length,
      actualStart: iso(p.paid_from),
      ...(p.ended_at
        ? { actualEnd: iso(p.ended_at) }
        : p.status !== 'active'
          ? { actualEnd: iso(p.paid_until) }
          : {}),
      initiator: { id: 'parklink-phone', version: 1 },
      identifiedCredentials: [bayCredential(p.meter_id, p.bay_id)],
      hierachyElement: { id: placeId.bay(p.meter_id, p.bay_id), version: 1 },
      segments: segs,
    });
  }
  return { sessions, rights };
}

/**
 * A meter sells time for a bay (pay by space): the bay is the credential an enforcement officer
 * checks, as ParkLink knows no number plate.
 */
function bayCredential(meter: number, bay: number): Json {
  return { identifier: { className: 'ParkLinkBay', id: `${meter}:${bay}` }, issuer: en('ParkLink') };
}

/** The bay sensors' arrivals and departures, oldest first (ParkLink's shape, not an APDS one). */
export async function occupancyChanges(db: Queryable): Promise<Json[]> {
  const rows = (
    await db.query<{ meter_id: number; occurred_at: Date; event: string; bay_id: number }>(
      `SELECT meter_id, occurred_at, event, bay_id FROM meter_events
        WHERE event IN ('bay-arrived', 'bay-left') AND bay_id IS NOT NULL ORDER BY occurred_at, id`,
    )
  ).rows;
  return rows.map((r) => ({
    place: { id: placeId.bay(r.meter_id, r.bay_id), version: 1 },
    at: iso(r.occurred_at),
    occupied: r.event === 'bay-arrived',
  }));
}

export { iso, en };
