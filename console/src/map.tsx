// Meters and areas on a map that needs no internet: Leaflet drawing the areas' outlines (GeoJSON)
// and the meters (canvas circles coloured by their light) with no tile layer at all. Admins draw
// an area by clicking its corners.
import L from 'leaflet';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, type Operator, roleAtLeast } from './api';
import { useFleet } from './hooks';
import type { FleetStore } from './store';

interface AreaView {
  name: string;
  meters: number;
  outline: number[][][] | null;
}

const COLOURS = { green: '#1a7f37', amber: '#b35900', red: '#c62828', grey: '#6b7280' } as const;

export function MapScreen({ store, operator }: { store: FleetStore; operator: Operator }) {
  const version = useFleet(store);
  const element = useRef<HTMLDivElement>(null);
  const map = useRef<L.Map | null>(null);
  const meterLayer = useRef<L.LayerGroup | null>(null);
  const areaLayer = useRef<L.LayerGroup | null>(null);
  const draftLayer = useRef<L.LayerGroup | null>(null);
  const [areas, setAreas] = useState<AreaView[]>([]);
  const [drawing, setDrawing] = useState(false);
  const [draft, setDraft] = useState<[number, number][]>([]);
  const [areaName, setAreaName] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const canDraw = roleAtLeast(operator.role, 'admin');

  const loadAreas = () =>
    api<{ areas: AreaView[] }>('GET', '/api/console/areas').then((a) => setAreas(a.areas));

  useEffect(() => {
    if (!element.current) return;
    const m = L.map(element.current, { preferCanvas: true, attributionControl: false, zoomSnap: 0.25 });
    m.setView([51.5074, -0.1278], 13);
    areaLayer.current = L.layerGroup().addTo(m);
    meterLayer.current = L.layerGroup().addTo(m);
    draftLayer.current = L.layerGroup().addTo(m);
    map.current = m;
    void loadAreas();
    return () => m.remove();
  }, []);

  useEffect(() => {
    const m = map.current;
    if (!m) return;
    const onClick = (e: L.LeafletMouseEvent) => {
      if (drawing) setDraft((d) => [...d, [e.latlng.lng, e.latlng.lat]]);
    };
    m.on('click', onClick);
    return () => void m.off('click', onClick);
  }, [drawing]);

  useEffect(() => {
    const layer = draftLayer.current;
    if (!layer) return;
    layer.clearLayers();
    if (draft.length > 0)
      L.polygon(
        draft.map(([lng, lat]) => [lat, lng]),
        { color: '#1d4ed8', dashArray: '4' },
      ).addTo(layer);
  }, [draft]);

  useEffect(() => {
    const layer = areaLayer.current;
    if (!layer) return;
    layer.clearLayers();
    for (const a of areas) {
      if (!a.outline) continue;
      L.geoJSON(
        {
          type: 'Feature',
          properties: { name: a.name },
          geometry: { type: 'Polygon', coordinates: a.outline },
        } as Parameters<typeof L.geoJSON>[0],
        {
          style: { color: '#4b5563', weight: 2, fillOpacity: 0.08 },
        },
      )
        .bindTooltip(`${a.name}: ${a.meters} meters`)
        .addTo(layer);
    }
  }, [areas]);

  useEffect(() => {
    const layer = meterLayer.current;
    const m = map.current;
    if (!layer || !m) return;
    layer.clearLayers();
    const placed: L.LatLngExpression[] = [];
    for (const r of store.rows()) {
      if (r.latitude === null || r.longitude === null) continue;
      placed.push([r.latitude, r.longitude]);
      L.circleMarker([r.latitude, r.longitude], {
        radius: 6,
        color: COLOURS[r.light],
        fillColor: COLOURS[r.light],
        fillOpacity: 0.85,
        weight: 1,
      })
        .bindTooltip(`${r.id} ${r.name} (${r.contact})`)
        .on('click', () => {
          if (!drawing) location.hash = `#/meters/${r.id}`;
        })
        .addTo(layer);
    }
    if (placed.length > 0 && !m.getBounds().isValid()) m.fitBounds(L.latLngBounds(placed));
  }, [version, drawing]);

  const showEverything = () => {
    const points = [...store.meters.values()]
      .filter((r) => r.latitude !== null && r.longitude !== null)
      .map((r) => [r.latitude!, r.longitude!] as [number, number]);
    for (const a of areas)
      for (const ring of a.outline ?? []) for (const [lng, lat] of ring) points.push([lat, lng]);
    if (points.length > 0) map.current?.fitBounds(L.latLngBounds(points), { padding: [20, 20] });
  };
  useEffect(() => {
    if (store.loaded) showEverything();
  }, [store.loaded, areas.length]);

  const save = async (event: Event) => {
    event.preventDefault();
    if (draft.length < 3) return setMessage('Click at least three corners on the map first.');
    try {
      await api('PUT', `/api/areas/${encodeURIComponent(areaName)}/outline`, {
        outline: [[...draft, draft[0]]],
      });
      setMessage(`Area ${areaName} saved.`);
      setDraft([]);
      setDrawing(false);
      await loadAreas();
    } catch (e) {
      setMessage(e instanceof ApiError ? e.message : String(e));
    }
  };

  const placed = [...store.meters.values()].filter((r) => r.latitude !== null).length;
  return (
    <div class="map-screen">
      <h1>Map</h1>
      <p>
        {placed} of {store.meters.size} meters placed; {areas.filter((a) => a.outline).length} areas drawn. No
        map tiles: the outlines and meters are drawn on their own.{' '}
        <button type="button" onClick={showEverything}>
          Show everything
        </button>
      </p>
      {canDraw && (
        <form class="draw" onSubmit={save} aria-label="Draw an area">
          <button
            type="button"
            aria-pressed={drawing}
            onClick={() => {
              setDrawing(!drawing);
              setDraft([]);
            }}
          >
            {drawing ? 'Stop drawing' : 'Draw an area'}
          </button>
          {drawing && (
            <>
              <span>{draft.length} corners</span>
              <label>
                Area name
                <input
                  required
                  maxLength={64}
                  value={areaName}
                  onInput={(e) => setAreaName(e.currentTarget.value)}
                />
              </label>
              <button type="submit">Save area</button>
            </>
          )}
        </form>
      )}
      {message && <p role="status">{message}</p>}
      <div ref={element} class="map" role="application" aria-label="Map of meters and areas" />
      <ul class="legend" aria-label="Areas">
        {areas.map((a) => (
          <li key={a.name}>
            {a.name}: {a.meters} meters{a.outline ? '' : ' (not drawn)'}
          </li>
        ))}
      </ul>
    </div>
  );
}
