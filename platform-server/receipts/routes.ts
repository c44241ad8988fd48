// The receipt page's API, for anyone holding a code the meter showed (no login):
//   GET  /api/receipts/:code            the receipt and its chain proof (JSON)
//   GET  /api/receipts/:code/pdf        the same as a PDF
//   POST /api/receipts/:code/email      { to }: the PDF by e-mail, through the outbox (SMTP)
// Lookups are limited per address, so the 40-bit check cannot be searched for; e-mails per address
// and per receipt, so the page cannot be used to send mail at will.
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, RequestRefused, sendRefusal, sendTooMany } from '../core/errors';
import type { Queryable } from '../core/db';
import { RateLimiter } from '../core/rateLimiter';
import type { Outbox } from '../phone/channels';
import { receiptPdf, receiptText } from './render';
import type { ReceiptService } from './service';

export interface ReceiptLimits {
  lookups: RateLimiter;
  emailsPerAddress: RateLimiter;
  emailsPerReceipt: RateLimiter;
}

export function defaultReceiptLimits(): ReceiptLimits {
  return {
    lookups: new RateLimiter(60, 60_000),
    emailsPerAddress: new RateLimiter(20, 60 * 60_000),
    emailsPerReceipt: new RateLimiter(5, 60 * 60_000),
  };
}

export interface ReceiptRoutesOptions {
  service: ReceiptService;
  timeZone: string;
  outbox: Outbox;
  db: Queryable;
  /** Whether e-mail goes out (SMTP configured): without it the e-mail route says so, never pretends. */
  emailEnabled: boolean;
  limits?: ReceiptLimits;
  now?: () => Date;
}

const codeParams = {
  type: 'object',
  properties: {
    code: {
      type: 'string',
      minLength: 1,
      maxLength: 40,
      description: 'as the meter showed it: 1001-42-7KQ4-M2XD',
    },
  },
  required: ['code'],
} as const;

const receiptSchema = { type: 'object', additionalProperties: true } as const;

export const receiptRoutes: FastifyPluginAsync<ReceiptRoutesOptions> = async (app, options) => {
  const { service, timeZone, outbox } = options;
  const limits = options.limits ?? defaultReceiptLimits();
  const now = options.now ?? (() => new Date());

  app.get<{ Params: { code: string } }>(
    '/api/receipts/:code',
    {
      schema: {
        summary: 'A sale at a meter by the receipt code the meter showed, with its chain proof',
        params: codeParams,
        response: { 200: receiptSchema, ...errorResponses(400, 404, 429) },
      },
    },
    async (request, reply) => {
      const wait = limits.lookups.hit(`ip:${request.ip}`);
      if (wait) return sendTooMany(reply, wait, 'receipt lookups');
      try {
        return await service.find(request.params.code);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.get<{ Params: { code: string } }>(
    '/api/receipts/:code/pdf',
    {
      schema: {
        summary: 'The receipt as a PDF, with the record and its chain proof',
        params: codeParams,
        response: {
          200: { content: { 'application/pdf': { schema: { type: 'string', format: 'binary' } } } },
          ...errorResponses(400, 404, 429),
        },
      },
    },
    async (request, reply) => {
      const wait = limits.lookups.hit(`ip:${request.ip}`);
      if (wait) return sendTooMany(reply, wait, 'receipt lookups');
      try {
        const receipt = await service.find(request.params.code);
        return reply
          .header('content-type', 'application/pdf')
          .header('content-disposition', `attachment; filename="parklink-receipt-${receipt.code}.pdf"`)
          .send(await receiptPdf(receipt, timeZone, now()));
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );

  app.post<{ Params: { code: string }; Body: { to: string } }>(
    '/api/receipts/:code/email',
    {
      schema: {
        summary: 'Sends the receipt PDF by e-mail (queued in the outbox, sent over SMTP)',
        params: codeParams,
        body: {
          type: 'object',
          properties: { to: { type: 'string', format: 'email', maxLength: 254 } },
          required: ['to'],
          additionalProperties: false,
        },
        response: {
          202: {
            type: 'object',
            properties: { queued: { type: 'boolean' }, to: { type: 'string' } },
            required: ['queued', 'to'],
          },
          ...errorResponses(400, 404, 429, 503),
        },
      },
    },
    async (request, reply) => {
      try {
        if (!options.emailEnabled)
          throw new RequestRefused(
            503,
            'email-unavailable',
            'e-mail receipts are not set up here: download the PDF',
          );
        const byAddress = limits.emailsPerAddress.hit(`ip:${request.ip}`);
        if (byAddress) return sendTooMany(reply, byAddress, 'e-mails');
        const receipt = await service.find(request.params.code);
        const byReceipt = limits.emailsPerReceipt.hit(receipt.code);
        if (byReceipt) return sendTooMany(reply, byReceipt, 'e-mails of this receipt');
        const to = request.body.to.trim();
        await outbox.enqueue(options.db, {
          driverId: null,
          channel: 'email',
          recipient: to,
          kind: 'receipt',
          body: receiptText(receipt, timeZone),
          receiptCode: receipt.code,
        });
        void outbox.deliverDue().catch((error) => request.log.error({ err: error }, 'receipt e-mail'));
        return reply.code(202).send({ queued: true, to });
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );
};
