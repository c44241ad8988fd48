// Handheld uploads (docs/handheld.md): an operator's handheld posts the sealed frames it collected
// from meters with no link of their own (record sets, and the routed types: status, security events
// and key-rotation acks, tariff acks); each goes to ingest's handleUplink on the
// meter's uplink topic (read from the frame's header), so it is checked, stored once and
// acknowledged exactly as a frame from the broker. The reply carries, per frame, the outcome and
// the sealed 0x81 ack, which the handheld carries back to the meter (the ack is also published on
// the meter's downlink topic, for a meter that is online after all).
//
//   POST /api/handheld/uplinks  (operator) { frames: [hex, ...] } → 200 { results: [...] }
import type { FastifyPluginAsync } from 'fastify';
import { fromHex, toHex } from '../../protocol/bytes';
import { ProtocolError } from '../../protocol/errors';
import { decodeHeader } from '../../protocol/frame';
import { uplinkTopic } from '../../protocol/topics';
import { errorResponses } from '../core/errors';
import { object } from '../core/schemas';
import type { IngestOutcome } from '../ingest/gate';
import type { OperatorGuard } from '../operators/service';

/** Frames per request: a handheld's day at a few hundred meters, in a few requests. */
export const MAX_HANDHELD_FRAMES = 256;

export interface HandheldRoutesOptions {
  ingest: { handleUplink(topic: string, frame: Uint8Array): Promise<IngestOutcome> };
  guard: OperatorGuard;
}

export interface HandheldResult {
  ok: boolean;
  meterId?: number;
  frameSeq?: number;
  /** Records new to the platform, and records it already held (same bytes). */
  stored?: number;
  duplicates?: number;
  /** The last record acknowledged. */
  ackSeq?: number;
  /** The sealed 0x81 ack (hex), for the handheld to carry to the meter. */
  downlink?: string;
  reason?: string;
  detail?: string;
}

const uplinksBody = {
  type: 'object',
  properties: {
    frames: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_HANDHELD_FRAMES,
      items: { type: 'string', pattern: '^([0-9a-fA-F]{2}){30,8192}$' },
    },
  },
  required: ['frames'],
  additionalProperties: false,
} as const;

const resultSchema = object(
  {
    ok: { type: 'boolean' },
    meterId: { type: 'integer' },
    frameSeq: { type: 'integer' },
    stored: { type: 'integer' },
    duplicates: { type: 'integer' },
    ackSeq: { type: 'integer' },
    downlink: { type: 'string', description: 'sealed 0x81 ack, hex' },
    reason: { type: 'string' },
    detail: { type: 'string' },
  },
  ['ok'],
);

export const handheldRoutes: FastifyPluginAsync<HandheldRoutesOptions> = async (app, { ingest, guard }) => {
  app.post<{ Body: { frames: string[] } }>(
    '/api/handheld/uplinks',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary:
          'Hand in the sealed frames a handheld collected from meters (record sets and other uplinks); returns the acks to carry back',
        body: uplinksBody,
        response: {
          200: object({ results: { type: 'array', items: resultSchema } }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const results: HandheldResult[] = [];
      // In order: a meter's sets follow each other in its chain.
      for (const hex of request.body.frames) {
        const frame = fromHex(hex);
        let topic: string;
        try {
          topic = uplinkTopic(decodeHeader(frame).meterId);
        } catch (error) {
          const reason = error instanceof ProtocolError ? error.code : 'bad-field';
          results.push({ ok: false, reason, detail: (error as Error).message });
          continue;
        }
        const outcome = await ingest.handleUplink(topic, frame);
        results.push(
          outcome.ok && 'routed' in outcome
            ? { ok: true, meterId: outcome.meterId, frameSeq: outcome.frameSeq }
            : outcome.ok
              ? {
                  ok: true,
                  meterId: outcome.meterId,
                  frameSeq: outcome.frameSeq,
                  stored: outcome.stored.length,
                  duplicates: outcome.duplicates,
                  ackSeq: outcome.ack.seq,
                  ...(outcome.ackFrame ? { downlink: toHex(outcome.ackFrame) } : {}),
                }
              : {
                  ok: false,
                  reason: outcome.reason,
                  detail: outcome.detail,
                  ...(outcome.meterId === undefined ? {} : { meterId: outcome.meterId }),
                  ...(outcome.frameSeq === undefined ? {} : { frameSeq: outcome.frameSeq }),
                },
        );
      }
      await guard.audit(request, {
        action: 'handheld.upload',
        detail: {
          frames: results.length,
          accepted: results.filter((r) => r.ok).length,
          stored: results.reduce((n, r) => n + (r.stored ?? 0), 0),
        },
      });
      return reply.send({ results });
    },
  );
};
