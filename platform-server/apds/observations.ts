// APDS observations (GET /apds/observations): ObservationElements of the parkingdata/spec document.
//
// Sources. Each source is one function from the database to ObservationElements; the list serves
// them all, oldest first: the bay sensors and the enforcement officers' penalty notices. Another
// source is one more function mapping its rows with `observationElement`, listed in
// OBSERVATION_SOURCES (docs/apds.md says which fields it fills).
//
// The bay sensors. A sensor reports a vehicle's arrival (`bay-arrived`) and departure (`bay-left`)
// in the meter's events (meter_events). An observation is one vehicle's presence in a bay: from its
// arrival (observationStartTime) to its departure (observationEndTime, absent while it is there,
// "continuous since observationStartTime" in the document's words); version 1 while open, 2 once
// closed. A departure without an arrival before it (the sensor's history began with the bay taken)
// is not an observation. APDS's method enum (anpr, chalk, rfTransponder, scanner, visual) has no bay
// sensor: ParkLink says `scanner` (a fixed device), and its description names the bay sensor. The
// document requires the observer's location as a point: a meter without coordinates in the registry
// (console) gives no observations; its sensors' changes stay in the export's occupancyChanges.
import type { Queryable } from '../core/db';
import { en, iso, placeId } from './resources';

type Json = Record<string, unknown>;

/** One source of observations (the bay sensors, enforcement). */
export type ObservationSource = (db: Queryable) => Promise<Json[]>;

/** The organisation that observes for ParkLink's sources (the issuer used across the APDS room). */
export const OBSERVER_ORGANISATION = Object.freeze({ id: 'parklink-operator', version: 1 });

export interface ObservationFields {
  id: string;
  version: number;
  method: 'anpr' | 'chalk' | 'rfTransponder' | 'scanner' | 'visual';
  /** Who or what observed (a person, or "meter 12 bay sensor"). */
  observer: string;
  start: Date;
  end?: Date;
  created: Date;
  /** WGS 84, degrees. */
  observer_location: { latitude: number; longitude: number };
  /** Where the observed vehicle was, as text ("bay 2 of meter 12"). */
  observed_text: string;
  /** The place observed (a bay: bay:<meter>:<bay>). */
  place?: string;
  /** A credential seen (an enforcement sighting: the plate, its type). */
  credential?: { type: string; id: string };
  description: string;
}

/** The ObservationElement of one observation, in the shape every source shares. */
export function observationElement(o: ObservationFields): Json {
  return {
    id: o.id,
    version: o.version,
    method: o.method,
    observer: o.observer,
    ...(o.credential ? { type: o.credential.type, observedCredentialId: o.credential.id } : {}),
    observationStartTime: iso(o.start),
    ...(o.end ? { observationEndTime: iso(o.end) } : {}),
    description: en(o.description),
    creationDateTime: iso(o.created),
    location: {
      observedLocationTextual: en(o.observed_text),
      observerLocation: {
        pointCoordinates: {
          epsgCode: 'EPSG:4326',
          x: o.observer_location.longitude,
          y: o.observer_location.latitude,
        },
      },
    },
    ...(o.place ? { elementIds: { id: o.place, version: 1 } } : {}),
    observerOrganisation: OBSERVER_ORGANISATION,
  };
}

interface SensorRow {
  id: number;
  meter_id: number;
  bay_id: number;
  frame_seq: number;
  event: 'bay-arrived' | 'bay-left';
  occurred_at: Date;
  received_at: Date;
  latitude: number;
  longitude: number;
}

/** The bay sensors' vehicle presences (arrival to departure) at meters with coordinates. */
export async function sensorObservations(db: Queryable): Promise<Json[]> {
  const rows = (
    await db.query<SensorRow>(
      `SELECT e.id, e.meter_id, e.bay_id, e.frame_seq, e.event, e.occurred_at, e.received_at, m.latitude, m.longitude
         FROM meter_events e JOIN meters m ON m.id = e.meter_id
        WHERE e.event IN ('bay-arrived', 'bay-left') AND e.bay_id IS NOT NULL AND m.latitude IS NOT NULL
        ORDER BY e.meter_id, e.bay_id, e.occurred_at, e.id`,
    )
  ).rows;
  const out: Json[] = [];
  let open: SensorRow | undefined;
  const close = (arrival: SensorRow, departure?: SensorRow, unreported = false) => {
    const meter = Number(arrival.meter_id);
    const bay = Number(arrival.bay_id);
    out.push(
      observationElement({
        id: `sensor:${meter}:${bay}:${arrival.frame_seq}`,
        version: departure || unreported ? 2 : 1,
        method: 'scanner',
        observer: `meter ${meter} bay sensor`,
        start: arrival.occurred_at,
        ...(departure ? { end: departure.occurred_at } : {}),
        created: departure?.received_at ?? arrival.received_at,
        observer_location: { latitude: Number(arrival.latitude), longitude: Number(arrival.longitude) },
        observed_text: `bay ${bay} of meter ${meter}`,
        place: placeId.bay(meter, bay),
        description: departure
          ? 'bay sensor: a vehicle was in the bay from its arrival to its departure'
          : unreported
            ? 'bay sensor: a vehicle arrived; its departure was not reported before the next arrival'
            : 'bay sensor: a vehicle is in the bay since its arrival',
      }),
    );
  };
  for (const row of rows) {
    const sameBay = open && open.meter_id === row.meter_id && open.bay_id === row.bay_id;
    if (open && !sameBay) {
      close(open);
      open = undefined;
    }
    if (row.event === 'bay-arrived') {
      if (open) close(open, undefined, true); // two arrivals in a row: a departure was not reported
      open = row;
    } else if (open) {
      close(open, row);
      open = undefined;
    }
  }
  if (open) close(open);
  return out;
}

interface NoticeRow {
  id: string;
  meter_id: number;
  bay_id: number;
  plate: string | null;
  officer: string;
  observed_at: Date;
  created_at: Date;
  latitude: number | null;
  longitude: number | null;
  meter_latitude: number | null;
  meter_longitude: number | null;
  status: string;
}

/**
 * Enforcement: each penalty notice is an officer's sighting of the bay (method `visual`), with the
 * plate as the observed credential when the officer recorded one; the officer's position when the
 * notice carries it, else the meter's. A notice cancelled on appeal stays an observation (the
 * sighting happened; the decision is about the charge).
 */
export async function enforcementObservations(db: Queryable): Promise<Json[]> {
  const rows = (
    await db.query<NoticeRow>(
      `SELECT n.id, n.meter_id, n.bay_id, n.plate, n.officer, n.observed_at, n.created_at, n.latitude, n.longitude,
              m.latitude AS meter_latitude, m.longitude AS meter_longitude, n.status
         FROM penalty_notices n JOIN meters m ON m.id = n.meter_id
        WHERE n.latitude IS NOT NULL OR m.latitude IS NOT NULL
        ORDER BY n.observed_at, n.id`,
    )
  ).rows;
  return rows.map((n) => {
    const meter = Number(n.meter_id);
    const bay = Number(n.bay_id);
    const at =
      n.latitude !== null && n.longitude !== null
        ? { latitude: Number(n.latitude), longitude: Number(n.longitude) }
        : { latitude: Number(n.meter_latitude), longitude: Number(n.meter_longitude) };
    return observationElement({
      id: `notice:${n.id}`,
      version: 1,
      method: 'visual',
      observer: `enforcement officer ${n.officer}`,
      start: n.observed_at,
      created: n.created_at,
      observer_location: at,
      observed_text: `bay ${bay} of meter ${meter}`,
      place: placeId.bay(meter, bay),
      ...(n.plate ? { credential: { type: 'licensePlate', id: n.plate } } : {}),
      description: `enforcement: a penalty notice was issued for the bay (${n.status})`,
    });
  });
}

/** Where observations come from: the bay sensors and enforcement officers' notices (docs/apds.md). */
export const OBSERVATION_SOURCES: readonly ObservationSource[] = Object.freeze([
  sensorObservations,
  enforcementObservations,
]);

/** Every source's observations, oldest first. */
export async function observations(
  db: Queryable,
  sources: readonly ObservationSource[] = OBSERVATION_SOURCES,
): Promise<Json[]> {
  const all = (await Promise.all(sources.map((source) => source(db)))).flat();
  return all.sort(
    (a, b) =>
      String(a.observationStartTime).localeCompare(String(b.observationStartTime)) ||
      String(a.id).localeCompare(String(b.id)),
  );
}
