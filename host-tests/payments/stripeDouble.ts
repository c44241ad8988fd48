// A local HTTP server that answers the part of Stripe's API the adapter uses (POST
// /v1/payment_intents, POST /v1/refunds) with the responses Stripe documents: a succeeded
// PaymentIntent, a 402 card_error (card_declined with its decline_code, or authentication_required
// for an off-session charge), the replay of the first response for a repeated Idempotency-Key
// (header Idempotent-Replayed: true), a 400 idempotency_error for a key reused with other parameters,
// refunds. Test payment methods, named as in Stripe's testing docs:
//   pm_card_visa (succeeds), pm_card_chargeDeclined (generic_decline),
//   pm_card_chargeDeclinedInsufficientFunds (insufficient_funds),
//   pm_card_authenticationRequired (authentication_required),
//   pm_card_slow (charged, but the answer is held back until the server closes: a timeout).
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  form: URLSearchParams;
}

type Answer = { status: number; body: unknown };

export class StripeDouble {
  readonly requests: SeenRequest[] = [];
  /** PaymentIntents created (a replay creates none): id → amount refunded so far and amount. */
  readonly intents = new Map<string, { amount: number; refunded: number; currency: string }>();
  readonly #byKey = new Map<string, { params: string; answer: Answer }>();
  readonly #sockets = new Set<Socket>();
  readonly #held: ServerResponse[] = [];
  #server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => this.#handle(req, res, body));
    });
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()) ?? resolve());
  }

  #handle(req: IncomingMessage, res: ServerResponse, body: string): void {
    const form = new URLSearchParams(body);
    const path = (req.url ?? '').split('?')[0];
    this.requests.push({ method: req.method ?? '', path, headers: req.headers, form });
    if (!/^Bearer sk_test_/.test(String(req.headers.authorization))) {
      this.#send(res, {
        status: 401,
        body: { error: { type: 'invalid_request_error', message: 'Invalid API Key provided' } },
      });
      return;
    }
    const key = req.headers['idempotency-key'];
    const params = `${req.method} ${path} ${body}`;
    if (typeof key === 'string') {
      const seen = this.#byKey.get(key);
      if (seen) {
        if (seen.params !== params) {
          this.#send(res, {
            status: 400,
            body: {
              error: {
                type: 'idempotency_error',
                message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
              },
            },
          });
          return;
        }
        this.#send(res, seen.answer, true);
        return;
      }
    }
    let answer: Answer;
    if (req.method === 'POST' && path === '/v1/payment_intents') answer = this.#paymentIntent(form);
    else if (req.method === 'POST' && path === '/v1/refunds') answer = this.#refund(form);
    else
      answer = {
        status: 404,
        body: { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${path})` } },
      };
    if (typeof key === 'string' && answer.status < 500) this.#byKey.set(key, { params, answer });
    if (form.get('payment_method') === 'pm_card_slow' && !this.#slowAnswered.has(String(key))) {
      // The charge is made, the answer never arrives: the client times out.
      this.#slowAnswered.add(String(key));
      this.#held.push(res);
      return;
    }
    this.#send(res, answer);
  }

  readonly #slowAnswered = new Set<string>();

  #paymentIntent(form: URLSearchParams): Answer {
    const amount = Number(form.get('amount'));
    const currency = form.get('currency') ?? '';
    const id = `pi_${randomBytes(12).toString('hex')}`;
    const base = {
      id,
      object: 'payment_intent',
      amount,
      currency,
      customer: form.get('customer'),
      payment_method: form.get('payment_method'),
      confirmation_method: 'automatic',
      capture_method: 'automatic',
      livemode: false,
      metadata: Object.fromEntries([...form].filter(([k]) => k.startsWith('metadata['))),
    };
    if (!Number.isInteger(amount) || amount < 1 || !form.get('customer') || !form.get('payment_method'))
      return {
        status: 400,
        body: {
          error: {
            type: 'invalid_request_error',
            code: 'parameter_missing',
            message: 'Missing required param',
          },
        },
      };
    const declined = (code: string, declineCode: string | undefined, message: string): Answer => {
      const intent = {
        ...base,
        status: 'requires_payment_method',
        last_payment_error: { type: 'card_error', code, decline_code: declineCode, message },
      };
      return {
        status: 402,
        body: {
          error: {
            type: 'card_error',
            code,
            ...(declineCode ? { decline_code: declineCode } : {}),
            message,
            payment_intent: intent,
            doc_url: `https://docs.stripe.com/error-codes/${code.replace(/_/g, '-')}`,
          },
        },
      };
    };
    switch (form.get('payment_method')) {
      case 'pm_card_chargeDeclined':
        return declined('card_declined', 'generic_decline', 'Your card was declined.');
      case 'pm_card_chargeDeclinedInsufficientFunds':
        return declined('card_declined', 'insufficient_funds', 'Your card has insufficient funds.');
      case 'pm_card_authenticationRequired':
        return declined(
          'authentication_required',
          'authentication_required',
          'Your card was declined. This transaction requires authentication.',
        );
      default:
        this.intents.set(id, { amount, refunded: 0, currency });
        return { status: 200, body: { ...base, status: 'succeeded', latest_charge: `ch_${id.slice(3)}` } };
    }
  }

  #refund(form: URLSearchParams): Answer {
    const intentId = form.get('payment_intent') ?? '';
    const intent = this.intents.get(intentId);
    if (!intent)
      return {
        status: 404,
        body: {
          error: {
            type: 'invalid_request_error',
            code: 'resource_missing',
            param: 'payment_intent',
            message: `No such payment_intent: '${intentId}'`,
          },
        },
      };
    const amount = form.has('amount') ? Number(form.get('amount')) : intent.amount - intent.refunded;
    if (intent.refunded + amount > intent.amount)
      return {
        status: 400,
        body: {
          error: {
            type: 'invalid_request_error',
            code: 'charge_already_refunded',
            message: `Charge ch_${intentId.slice(3)} has already been refunded.`,
          },
        },
      };
    intent.refunded += amount;
    return {
      status: 200,
      body: {
        id: `re_${randomBytes(12).toString('hex')}`,
        object: 'refund',
        amount,
        currency: intent.currency,
        payment_intent: intentId,
        charge: `ch_${intentId.slice(3)}`,
        status: 'succeeded',
        metadata: {},
      },
    };
  }

  #send(res: ServerResponse, answer: Answer, replayed = false): void {
    res.writeHead(answer.status, {
      'content-type': 'application/json',
      'request-id': `req_${randomBytes(7).toString('hex')}`,
      ...(replayed ? { 'idempotent-replayed': 'true' } : {}),
    });
    res.end(JSON.stringify(answer.body));
  }
}
