// Handheld uploads (docs/handheld.md): an operator's handheld posts the sealed frames it collected
// from meters with no link of their own (record sets, and the routed types: status, security events
// and key-rotation acks, tariff acks); each goes to ingest's handleUplink on the
// meter's uplink topic (read from the frame's header), so it is checked, stored once and
// acknowledged exactly as a frame from the broker. The reply carries, per frame, the outcome and
// the sealed 0x81 ack, which the handheld carries back to the meter (the ack is also published on
// the meter's downlink topic, for a meter that is online after all).
//
// The other way, the downlinks the platform sealed for a meter (a key rotation, settings, a tariff,
// a blacklist push, release tokens, firmware messages) wait in ingest's outbox (ingest/outbox.ts) for
// a handheld to fetch and carry; the same sealed bytes as published, so a second delivery is
// refused by the meter's downlink replay window.
//
//   POST /api/handheld/uplinks                 (operator) { frames: [hex, ...] } → 200 { results: [...] }
//   GET  /api/handheld/meters/:id/downlinks    (operator) → 200 { meterId, downlinks: [...] } | 404
//   GET  /api/handheld/downlinks?meters=1,2,3  (operator) → 200 { meters: [{ meterId, downlinks }], unknown }
import type { FastifyPluginAsync } from 'fastify';
import { fromHex, toHex } from '../../protocol/bytes';
import { ProtocolError } from '../../protocol/errors';
import { decodeHeader } from '../../protocol/frame';
import { uplinkTopic } from '../../protocol/topics';
import { errorResponses, sendError } from '../core/errors';
import { meterIdParams, object } from '../core/schemas';
import type { IngestOutcome } from '../ingest/gate';
import type { DownlinkOutbox, KeptDownlink } from '../ingest/outbox';
import type { OperatorGuard } from '../operators/service';

/** Frames per request: a handheld's day at a few hundred meters, in a few requests. */
export const MAX_HANDHELD_FRAMES = 256;

/** Meters per fetch of downlinks: a handheld's beat. */
export const MAX_HANDHELD_METERS = 256;

export interface HandheldRoutesOptions {
  ingest: {
    handleUplink(topic: string, frame: Uint8Array): Promise<IngestOutcome>;
    readonly outbox: Pick<DownlinkOutbox, 'pending' | 'known'>;
  };
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

/** A waiting downlink as a handheld gets it: the sealed frame in base64. */
export interface HandheldDownlink {
  seq: number;
  type: number;
  epoch: number;
  frame: string;
}

const downlinkSchema = object(
  {
    seq: { type: 'integer', description: 'downlink frame sequence number' },
    type: { type: 'integer', description: 'frame type (0x8N)' },
    epoch: { type: 'integer', description: 'key epoch it is sealed under' },
    frame: { type: 'string', description: 'the sealed frame, base64' },
  },
  ['seq', 'type', 'epoch', 'frame'],
);

const meterDownlinksSchema = object(
  { meterId: { type: 'integer' }, downlinks: { type: 'array', items: downlinkSchema } },
  ['meterId', 'downlinks'],
);

function shown(downlink: KeptDownlink): HandheldDownlink {
  return {
    seq: downlink.seq,
    type: downlink.type,
    epoch: downlink.epoch,
    frame: Buffer.from(downlink.frame).toString('base64'),
  };
}

export const handheldRoutes: FastifyPluginAsync<HandheldRoutesOptions> = async (app, { ingest, guard }) => {
  app.get<{ Params: { id: number } }>(
    '/api/handheld/meters/:id/downlinks',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary:
          "The sealed downlinks waiting for a meter, in sequence order, for a handheld to carry (a repeat is refused by the meter's replay window)",
        params: meterIdParams,
        response: { 200: meterDownlinksSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const meterId = request.params.id;
      if ((await ingest.outbox.known([meterId])).length === 0)
        return sendError(reply, 404, 'unknown-meter', `meter ${meterId} is not provisioned`);
      const downlinks = (await ingest.outbox.pending([meterId])).map(shown);
      await guard.audit(request, {
        action: 'handheld.downlinks',
        meterId,
        detail: { frames: downlinks.length, seqs: downlinks.map((d) => d.seq) },
      });
      return reply.send({ meterId, downlinks });
    },
  );

  app.get<{ Querystring: { meters: string } }>(
    '/api/handheld/downlinks',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: "The sealed downlinks waiting for each meter on a handheld's beat, in one call",
        querystring: {
          type: 'object',
          properties: {
            meters: {
              type: 'string',
              pattern: '^[0-9]{1,10}(,[0-9]{1,10})*$',
              description: `meter ids, comma-separated, at most ${MAX_HANDHELD_METERS}`,
            },
          },
          required: ['meters'],
          additionalProperties: false,
        },
        response: {
          200: object(
            {
              meters: { type: 'array', items: meterDownlinksSchema },
              unknown: { type: 'array', items: { type: 'integer' } },
            },
            ['meters', 'unknown'],
          ),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const ids = [...new Set(request.query.meters.split(',').map(Number))];
      const bad = ids.find((id) => id > 0xffffffff);
      if (bad !== undefined)
        return sendError(reply, 400, 'bad-meter-id', `${bad} is not a meter id`, 'meters');
      if (ids.length > MAX_HANDHELD_METERS)
        return sendError(reply, 400, 'too-many-meters', `at most ${MAX_HANDHELD_METERS} meters`, 'meters');
      const known = await ingest.outbox.known(ids);
      const pending = await ingest.outbox.pending(known);
      const meters = known.map((meterId) => ({
        meterId,
        downlinks: pending.filter((d) => d.meterId === meterId).map(shown),
      }));
      await guard.audit(request, {
        action: 'handheld.downlinks',
        detail: { meters: known.length, frames: pending.length },
      });
      return reply.send({ meters, unknown: ids.filter((id) => !known.includes(id)) });
    },
  );

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
