// Loaded into a platform instance by a load run only (`--import`, with --expose-gc), never by
// production: asked over the IPC channel, it collects garbage fully and answers what the heap holds
// (and, given a path, writes a heap snapshot there), so the run can say what each connected meter
// costs the platform in memory; resident memory cannot, the collector returns more than meters take.
import { writeHeapSnapshot } from 'node:v8';

export interface HeapProbeAnswer {
  probe: 'heap';
  /** V8 heap in use after a full collection, bytes. */
  heapUsed: number;
  /** Memory of C++ objects bound to JavaScript ones (Buffers' backing stores among them). */
  external: number;
  arrayBuffers: number;
  rss: number;
  snapshot?: string;
}

const collect = (globalThis as { gc?: () => void }).gc;

process.on('message', (message: { probe?: string; snapshot?: string }) => {
  if (message?.probe !== 'heap') return;
  if (!collect) throw new Error('the heap probe needs --expose-gc');
  // Twice: the first pass runs finalizers whose objects the second frees.
  collect();
  collect();
  const memory = process.memoryUsage();
  const answer: HeapProbeAnswer = {
    probe: 'heap',
    heapUsed: memory.heapUsed,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
    rss: memory.rss,
    snapshot: message.snapshot ? writeHeapSnapshot(message.snapshot) : undefined,
  };
  process.send?.(answer);
});
// The listener must not keep the instance alive once the platform has closed.
process.channel?.unref();
