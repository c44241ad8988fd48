import { useEffect, useState } from 'preact/hooks';
import type { FleetStore } from './store';

/** Re-renders the calling screen when the fleet changes (at most once a frame). */
export function useFleet(store: FleetStore): number {
  const [version, setVersion] = useState(store.version);
  useEffect(() => store.subscribe(() => setVersion(store.version)), [store]);
  return version;
}
