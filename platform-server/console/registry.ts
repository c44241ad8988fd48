// The meter registry (where a meter stands, its area and bays, how often it should call) and the
// areas' outlines. A meter registered here waits at key epoch 1 for the factory station, which
// provisions it through the same MeterDirectory.provision as tools/factory.ts and tools/flash.ts.
import type { Queryable } from '../core/db';
import { RequestRefused } from '../core/errors';
import type { MeterDirectory } from '../ingest/meters';

export interface RegistryChange {
  name?: string;
  address?: string | null;
  latitude?: number | null;
  longitude?: number | null;
  area?: string | null;
  bays?: number | null;
  contactSeconds?: number;
}

const COLUMNS: Record<keyof RegistryChange, string> = {
  name: 'name',
  address: 'address',
  latitude: 'latitude',
  longitude: 'longitude',
  area: 'area',
  bays: 'bays',
  contactSeconds: 'contact_seconds',
};

/** Coordinates come as a pair or not at all. */
function checkCoordinates(change: RegistryChange): void {
  if ('latitude' in change !== 'longitude' in change)
    throw new RequestRefused(
      400,
      'coordinates-incomplete',
      'latitude and longitude go together',
      'latitude' in change ? 'longitude' : 'latitude',
    );
  if ((change.latitude === null) !== (change.longitude === null))
    throw new RequestRefused(
      400,
      'coordinates-incomplete',
      'latitude and longitude are both set or both null',
      'latitude',
    );
}

export class MeterRegistry {
  constructor(private readonly meters: Pick<MeterDirectory, 'register'>) {}

  /** A new meter, not provisioned yet; 409 when the id is taken. */
  async register(tx: Queryable, entry: RegistryChange & { id: number; name: string }): Promise<void> {
    checkCoordinates(entry);
    const taken = await tx.query('SELECT 1 FROM meters WHERE id = $1', [entry.id]);
    if (taken.rows.length > 0)
      throw new RequestRefused(409, 'meter-exists', `meter ${entry.id} is already registered`, 'id');
    await this.meters.register(entry.id, entry.name, tx);
    const { name: _name, ...details } = entry;
    const { id: _id, ...change } = details;
    await setFields(tx, entry.id, change);
  }

  /** Changes the listed fields; 404 for a meter not registered. */
  update(tx: Queryable, id: number, change: RegistryChange): Promise<void> {
    return changeRegistryEntry(tx, id, change);
  }
}

/** Changes the listed fields of a meter's registry entry; 404 for a meter not registered. */
export async function changeRegistryEntry(tx: Queryable, id: number, change: RegistryChange): Promise<void> {
  checkCoordinates(change);
  // In the transaction: PGlite has one connection, which the transaction holds.
  const found = await tx.query('SELECT 1 FROM meters WHERE id = $1 FOR UPDATE', [id]);
  if (found.rows.length === 0) throw new RequestRefused(404, 'unknown-meter', `no meter ${id}`);
  await setFields(tx, id, change);
}

async function setFields(tx: Queryable, id: number, change: RegistryChange): Promise<void> {
  const keys = (Object.keys(change) as (keyof RegistryChange)[]).filter((k) => k in COLUMNS);
  if (keys.length === 0) return;
  const sets = keys.map((k, i) => `${COLUMNS[k]} = $${i + 2}`).join(', ');
  await tx.query(`UPDATE meters SET ${sets} WHERE id = $1`, [id, ...keys.map((k) => change[k] ?? null)]);
}

export interface AreaView {
  name: string;
  meters: number;
  outline: number[][][] | null;
}

/** Whether a ring is closed (first point = last) and every point is [longitude, latitude] in range. */
function checkOutline(outline: number[][][]): void {
  outline.forEach((ring, r) => {
    for (const [lon, lat] of ring)
      if (!(Math.abs(lat) <= 90 && Math.abs(lon) <= 180))
        throw new RequestRefused(
          400,
          'outline-out-of-range',
          'a point is not [longitude, latitude]',
          `outline.${r}`,
        );
    const first = ring[0];
    const last = ring[ring.length - 1];
    if (first[0] !== last[0] || first[1] !== last[1])
      throw new RequestRefused(
        400,
        'outline-not-closed',
        'each ring of the outline ends at its first point',
        `outline.${r}`,
      );
  });
}

export class AreaShapes {
  constructor(private readonly db: Queryable) {}

  /** Areas named by a meter or drawn, by name. */
  async list(): Promise<AreaView[]> {
    const { rows } = await this.db.query<{ name: string; meters: number; outline: number[][][] | null }>(
      `SELECT n.name, COALESCE(c.meters, 0)::int AS meters, s.outline
         FROM (SELECT area AS name FROM meters WHERE area IS NOT NULL UNION SELECT name FROM area_shapes) n
         LEFT JOIN (SELECT area, count(*) AS meters FROM meters WHERE area IS NOT NULL GROUP BY area) c ON c.area = n.name
         LEFT JOIN area_shapes s ON s.name = n.name
        ORDER BY n.name`,
    );
    return rows.map((r) => ({ name: r.name, meters: Number(r.meters), outline: r.outline }));
  }

  async draw(tx: Queryable, name: string, outline: number[][][], by: string): Promise<void> {
    checkOutline(outline);
    await tx.query(
      `INSERT INTO area_shapes (name, outline, updated_by) VALUES ($1, $2::jsonb, $3)
       ON CONFLICT (name) DO UPDATE SET outline = $2::jsonb, updated_at = now(), updated_by = $3`,
      [name, JSON.stringify(outline), by],
    );
  }
}
