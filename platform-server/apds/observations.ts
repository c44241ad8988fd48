// APDS observations (GET /apds/observations): ObservationElements of the parkingdata/spec document.
//
// Sources. Each source is one function from the database to ObservationElements; the list serves
// them all, oldest first. Today one source: the bay sensors. An enforcement source (a table of
// officers' sightings) is added by writing one function that maps its rows with `observationElement`
// and adding it to OBSERVATION_SOURCES (docs/apds.md says which fields it fills).
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

/** One source of observations (the bay sensors; enforcement to come). */
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

/** Where observations come from: add an enforcement source here (docs/apds.md). */
export const OBSERVATION_SOURCES: readonly ObservationSource[] = Object.freeze([sensorObservations]);

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
