// Call-in (dial-up): an operator asks a cellular meter to connect and report now. The platform
// texts the meter's SIM from its own number (one of the numbers the meter is provisioned to trust:
// meter.callIn); the meter checks the sender, connects and sends its status. The text carries no
// command: the sender's number is all the meter looks at.
//
//   PUT  /api/meters/:id/phone-number  body { msisdn } → 200 (operator; audited)
//   POST /api/meters/:id/call-in       body {} or { reason } → 202 { callInId, sentTo } | 404 | 409 no-phone-number |
//                                         503 no-sms-sender | 502 sms-failed   (operator; audited)
//
// The SMS goes through an SmsSender: WebhookSmsSender for a gateway, SimulatedSmsSender in tests
// and the demo. Without one configured, call-in answers 503: nothing is simulated by default.
import type { FastifyPluginAsync } from 'fastify';
import { postWebhook, type WebhookOptions } from '../core/webhook';
import type { Database } from '../core/db';
import { errorResponses, sendError } from '../core/errors';
import { meterIdParams, object } from '../core/schemas';
import type { MeterDirectory } from '../ingest/meters';
import type { OperatorGuard } from '../operators/service';

export interface SmsSender {
  readonly name: string;
  /** Resolves once the gateway took the message; throws with the reason otherwise. */
  send(to: string, text: string): Promise<void>;
}

/** A simulator for tests and the demo: keeps every text and hands it to `deliver` (a virtual modem). */
export class SimulatedSmsSender implements SmsSender {
  readonly name = 'simulated';
  readonly sent: { to: string; text: string }[] = [];
  /** Numbers the simulated network does not reach (the send fails). */
  readonly unreachable = new Set<string>();
  constructor(readonly deliver?: (to: string, text: string) => void) {}

  async send(to: string, text: string): Promise<void> {
    if (this.unreachable.has(to)) throw new Error(`${to} is not reachable`);
    this.sent.push({ to, text });
    this.deliver?.(to, text);
  }
}

/** POSTs `{ to, text }` as JSON to an SMS gateway; any 2xx is sent. */
export class WebhookSmsSender implements SmsSender {
  readonly name = 'webhook';
  constructor(readonly options: WebhookOptions) {}

  send(to: string, text: string): Promise<void> {
    return postWebhook(this.options, { to, text }, 'SMS gateway');
  }
}

/** What the text says; the meter does not read it (only the sender's number counts). */
export const CALL_IN_TEXT = 'ParkLink call-in: connect and report';

const MSISDN = '^\\+[1-9][0-9]{6,14}$';

/** All but the last three digits hidden, for answers and logs. */
export function maskNumber(msisdn: string): string {
  return msisdn.length <= 3 ? '***' : `${'*'.repeat(msisdn.length - 3)}${msisdn.slice(-3)}`;
}

export interface CallInRoutesOptions {
  db: Database;
  meters: Pick<MeterDirectory, 'exists'>;
  guard: OperatorGuard;
  sender?: SmsSender;
}

export const callInRoutes: FastifyPluginAsync<CallInRoutesOptions> = async (
  app,
  { db, meters, guard, sender },
) => {
  app.put<{ Params: { id: number }; Body: { msisdn: string } }>(
    '/api/meters/:id/phone-number',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: "Sets the number of a cellular meter's SIM (international form)",
        params: meterIdParams,
        body: {
          type: 'object',
          required: ['msisdn'],
          properties: { msisdn: { type: 'string', pattern: MSISDN } },
          additionalProperties: false,
        },
        response: {
          200: object({ meterId: { type: 'integer' }, msisdn: { type: 'string' } }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meters.exists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      await db.query('UPDATE meters SET msisdn = $2 WHERE id = $1', [id, request.body.msisdn]);
      await guard.audit(request, {
        action: 'meter.phone-number',
        meterId: id,
        detail: { msisdn: maskNumber(request.body.msisdn) },
      });
      return { meterId: id, msisdn: request.body.msisdn };
    },
  );

  app.post<{ Params: { id: number }; Body: { reason?: string } }>(
    '/api/meters/:id/call-in',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'Texts a cellular meter so that it connects and sends its status now',
        params: meterIdParams,
        body: {
          type: 'object',
          properties: { reason: { type: 'string', maxLength: 200 } },
          additionalProperties: false,
        },
        response: {
          202: object({ callInId: { type: 'integer' }, sentTo: { type: 'string' } }),
          ...errorResponses(400, 401, 403, 404, 409, 502, 503),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await meters.exists(id))) return sendError(reply, 404, 'unknown-meter', `no meter ${id}`);
      const msisdn = (
        await db.query<{ msisdn: string | null }>('SELECT msisdn FROM meters WHERE id = $1', [id])
      ).rows[0]?.msisdn;
      if (!msisdn) return sendError(reply, 409, 'no-phone-number', `meter ${id} has no SIM number on record`);
      if (!sender) return sendError(reply, 503, 'no-sms-sender', 'no SMS sender is configured for call-in');
      const by = request.operator?.username ?? 'unknown';
      let failure: string | undefined;
      try {
        await sender.send(msisdn, CALL_IN_TEXT);
      } catch (error) {
        failure = (error as Error).message;
      }
      const row = await db.query<{ id: string | number }>(
        `INSERT INTO call_ins (meter_id, requested_by, sender, state, detail) VALUES ($1, $2, $3, $4, $5)
         RETURNING id`,
        [id, by, sender.name, failure ? 'failed' : 'sent', failure ?? ''],
      );
      const callInId = Number(row.rows[0].id);
      await guard.audit(request, {
        action: 'meter.call-in',
        meterId: id,
        detail: {
          callInId,
          sender: sender.name,
          sentTo: maskNumber(msisdn),
          ...(request.body.reason ? { reason: request.body.reason } : {}),
          ...(failure ? { failure } : {}),
        },
      });
      if (failure)
        return sendError(reply, 502, 'sms-failed', `the SMS to meter ${id} was not sent: ${failure}`);
      return reply.code(202).send({ callInId, sentTo: maskNumber(msisdn) });
    },
  );
};
