// The fleet blacklist's HTTP API:
//
//   POST   /api/blacklist                      { cardNumber | token, reason, contact? } → 201 { token, last4, reason, version, changed }
//   GET    /api/blacklist                      the list (tokens, last four, reasons; no contacts)
//   DELETE /api/blacklist/:token               → 200 { version }
//   GET    /api/blacklist/:token/contact       the holder's contacts (supervisor; audited)
//   GET    /api/blacklist/stale                the current version and the meters behind it
//   GET    /api/blacklist/reviews?status=      cloned-card reports from the meters
//   POST   /api/blacklist/reviews/:id/confirm  { cardNumber? | token? } → lists the card as 'cloned'
//   POST   /api/blacklist/reviews/:id/dismiss
//
// Reading the list needs the viewer role; changing it and deciding reviews the operator role; the
// holder's contacts the supervisor role. A card number is tokenised on arrival: no row, audit entry
// or log line carries it (the audit gets the token and last four).
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { BLACKLIST_REASONS } from '../../protocol/blacklist';
import { errorResponses, sendError, sendRefusal } from '../core/errors';
import { object, u32 } from '../core/schemas';
import type { OperatorGuard } from '../operators/service';
import { CONTACT_LIMITS, type HolderContact } from './contacts';
import type { AddCard, BlacklistService } from './service';

export interface BlacklistRoutesOptions {
  service: BlacklistService;
  guard: OperatorGuard;
}

const tokenSchema = { type: 'string', pattern: '^[0-9a-f]{32}$' } as const;
const cardNumberSchema = { type: 'string', pattern: '^[0-9]{8,19}$' } as const;
const tokenParams = { type: 'object', properties: { token: tokenSchema }, required: ['token'] } as const;
const reviewParams = { type: 'object', properties: { id: u32 }, required: ['id'] } as const;
const contactSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: CONTACT_LIMITS.name },
    phone: { type: 'string', maxLength: CONTACT_LIMITS.phone, pattern: '^[+0-9 ()-]*$' },
    email: { type: 'string', maxLength: CONTACT_LIMITS.email },
  },
  additionalProperties: false,
} as const;

function by(request: FastifyRequest): string {
  return request.operator?.username ?? 'unknown';
}

export const blacklistRoutes: FastifyPluginAsync<BlacklistRoutesOptions> = async (
  app,
  { service, guard },
) => {
  app.post<{ Body: AddCard & { contact?: HolderContact } }>(
    '/api/blacklist',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'List a card (by number, tokenised and never stored, or by a token the fleet holds)',
        body: {
          type: 'object',
          properties: {
            cardNumber: cardNumberSchema,
            token: tokenSchema,
            reason: { type: 'string', enum: [...BLACKLIST_REASONS] },
            contact: contactSchema,
          },
          required: ['reason'],
          additionalProperties: false,
        },
        response: {
          201: object({
            token: { type: 'string' },
            last4: { type: 'string', nullable: true },
            reason: { type: 'string' },
            version: { type: 'integer' },
            changed: { type: 'boolean' },
          }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      try {
        const added = await service.add(request.body, by(request));
        await guard.audit(request, {
          action: 'blacklist.add',
          target: added.token,
          detail: {
            last4: added.last4,
            reason: added.reason,
            version: added.version,
            contact: request.body.contact !== undefined,
          },
        });
        return reply.code(201).send(added);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );
  app.get(
    '/api/blacklist',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'The fleet blacklist: tokens, last four digits, reasons (no contacts)',
        response: { 200: { type: 'array', items: { type: 'object', additionalProperties: true } } },
      },
    },
    async () => service.list(),
  );
  app.get(
    '/api/blacklist/stale',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary: 'The current list version and the meters whose acknowledged version is behind it',
        response: {
          200: object({
            version: { type: 'integer' },
            meters: { type: 'array', items: { type: 'object', additionalProperties: true } },
          }),
        },
      },
    },
    async () => service.stale(),
  );
  app.delete<{ Params: { token: string } }>(
    '/api/blacklist/:token',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'Remove a card from the fleet blacklist (its holder contacts go with it)',
        params: tokenParams,
        response: { 200: object({ version: { type: 'integer' } }), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      try {
        const removed = await service.remove(request.params.token);
        await guard.audit(request, {
          action: 'blacklist.remove',
          target: request.params.token,
          detail: removed,
        });
        return removed;
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );
  app.get<{ Params: { token: string } }>(
    '/api/blacklist/:token/contact',
    {
      onRequest: guard.requireRole('supervisor'),
      schema: {
        summary: "The listed card holder's contacts (personal data: supervisors, every read audited)",
        params: tokenParams,
        response: { 200: contactSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const contact = await service.contactOf(request.params.token);
      await guard.audit(request, {
        action: 'blacklist.contact.read',
        target: request.params.token,
        detail: { found: contact !== undefined },
      });
      if (!contact) return sendError(reply, 404, 'no-contact', 'no contacts kept for this card');
      return contact;
    },
  );
  app.get<{ Querystring: { status?: 'pending' | 'confirmed' | 'dismissed' } }>(
    '/api/blacklist/reviews',
    {
      onRequest: guard.requireRole('operator'),
      schema: {
        summary: 'Cards the meters refused as not genuine (card-cloned), for an operator to confirm',
        querystring: {
          type: 'object',
          properties: { status: { type: 'string', enum: ['pending', 'confirmed', 'dismissed'] } },
          additionalProperties: false,
        },
        response: { 200: { type: 'array', items: { type: 'object', additionalProperties: true } } },
      },
    },
    async (request) => service.reviews(request.query.status),
  );
  for (const decision of ['confirm', 'dismiss'] as const) {
    app.post<{ Params: { id: number }; Body: { cardNumber?: string; token?: string } | undefined }>(
      `/api/blacklist/reviews/:id/${decision}`,
      {
        onRequest: guard.requireRole('operator'),
        schema: {
          summary:
            decision === 'confirm'
              ? "Confirm a cloned-card report: list the card as 'cloned' (give its number or token when the report names only the UID)"
              : 'Dismiss a cloned-card report: nothing is listed',
          params: reviewParams,
          body: {
            type: 'object',
            properties: { cardNumber: cardNumberSchema, token: tokenSchema },
            additionalProperties: false,
            nullable: true,
          },
          response: {
            200: { type: 'object', additionalProperties: true },
            ...errorResponses(400, 401, 403, 404, 409),
          },
        },
      },
      async (request, reply) => {
        try {
          const decided = await service.decide(request.params.id, decision, by(request), request.body ?? {});
          await guard.audit(request, {
            action: `blacklist.review.${decision}`,
            target: String(request.params.id),
            detail: decided,
          });
          return decided;
        } catch (error) {
          return sendRefusal(reply, error);
        }
      },
    );
  }
};
