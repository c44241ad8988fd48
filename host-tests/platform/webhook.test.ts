// The outgoing gateway webhook both the phone channels and call-in texts go through.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebhookSmsSender } from '../../platform-server/fleet/callIn';
import { WebhookAdapter } from '../../platform-server/phone/channels';

describe('gateway webhooks (SMS and voice delivery, call-in texts)', () => {
  const seen: { auth?: string; type?: string; body: unknown }[] = [];
  let status = 200;
  const server = createServer((request: IncomingMessage, response) => {
    let text = '';
    request.on('data', (chunk) => {
      text += chunk;
    });
    request.on('end', () => {
      seen.push({
        auth: request.headers.authorization,
        type: request.headers['content-type'],
        body: JSON.parse(text),
      });
      response.statusCode = status;
      response.end();
    });
  });
  let url = '';

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/send`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    seen.length = 0;
    status = 200;
  });

  it('posts the call-in text as JSON with the bearer secret', async () => {
    await new WebhookSmsSender({ url, secret: 's3cret' }).send('+447700900123', 'hello');
    assert.deepEqual(seen, [
      { auth: 'Bearer s3cret', type: 'application/json', body: { to: '+447700900123', text: 'hello' } },
    ]);
  });

  it('posts a channel message without a secret when none is set', async () => {
    await new WebhookAdapter({ url }).deliver({
      id: 7,
      channel: 'sms',
      recipient: '+447700900124',
      kind: 'receipt',
      body: 'paid',
    } as Parameters<WebhookAdapter['deliver']>[0]);
    assert.deepEqual(seen, [
      {
        auth: undefined,
        type: 'application/json',
        body: { id: 7, channel: 'sms', to: '+447700900124', kind: 'receipt', text: 'paid' },
      },
    ]);
  });

  it('throws with the gateway’s status on anything but 2xx', async () => {
    status = 503;
    await assert.rejects(
      new WebhookSmsSender({ url }).send('+447700900125', 'x'),
      /SMS gateway answered 503/,
    );
    await assert.rejects(
      new WebhookAdapter({ url }).deliver({
        id: 8,
        channel: 'voice',
        recipient: '+447700900126',
        kind: 'x',
        body: 'y',
      } as Parameters<WebhookAdapter['deliver']>[0]),
      /gateway answered 503/,
    );
  });
});
