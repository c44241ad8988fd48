// Outgoing gateway webhooks (SMS and voice delivery, call-in texts): one JSON POST with an optional
// bearer secret and a timeout; any 2xx is taken, anything else throws with the status.

export interface WebhookOptions {
  url: string;
  /** Sent as `Authorization: Bearer …` when given. */
  secret?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export async function postWebhook(options: WebhookOptions, body: unknown, what: string): Promise<void> {
  const doFetch = options.fetch ?? fetch;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.secret) headers.authorization = `Bearer ${options.secret}`;
  const response = await doFetch(options.url, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
  });
  if (!response.ok) throw new Error(`${what} answered ${response.status}`);
}
