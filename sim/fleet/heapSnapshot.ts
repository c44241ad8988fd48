// What a V8 heap snapshot (.heapsnapshot, written by v8.writeHeapSnapshot) holds, summed by kind:
// objects by constructor name, closures by function name, the rest (strings, arrays, code, ...) by
// node type. Two summaries' difference says what grew between them.
import { readFileSync } from 'node:fs';

export interface HeapKind {
  kind: string;
  count: number;
  /** Bytes the nodes themselves take (not what they keep alive). */
  selfSize: number;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export function summariseHeapSnapshot(file: string): Map<string, HeapKind> {
  const { snapshot, nodes, strings } = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = snapshot.meta.node_types[0];
  const kinds = new Map<string, HeapKind>();
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]];
    const kind =
      type === 'object' || type === 'closure' ? `${strings[nodes[i + nameAt]]} (${type})` : `(${type})`;
    let entry = kinds.get(kind);
    if (!entry) {
      entry = { kind, count: 0, selfSize: 0 };
      kinds.set(kind, entry);
    }
    entry.count++;
    entry.selfSize += nodes[i + sizeAt];
  }
  return kinds;
}

/** The kinds whose self size grew most from `before` to `after`, largest first. */
export function heapGrowth(
  before: Map<string, HeapKind>,
  after: Map<string, HeapKind>,
  most = 10,
): HeapKind[] {
  const grown: HeapKind[] = [];
  for (const [kind, a] of after) {
    const b = before.get(kind);
    grown.push({ kind, count: a.count - (b?.count ?? 0), selfSize: a.selfSize - (b?.selfSize ?? 0) });
  }
  return grown.sort((x, y) => y.selfSize - x.selfSize).slice(0, most);
}
