// Webhook notifications: a JSON POST signed with HMAC-SHA256 over "<timestamp>.<body>"
// (header X-B365-Signature: sha256=<hex>, X-B365-Timestamp: unix seconds), so that the
// receiver can check origin and freshness with any HMAC tool.
import { createHmac, randomUUID } from 'node:crypto';
import { VERSION } from '../../src/core/version.js';
import type { WebhookSettings } from '../config.js';
import type { Notification } from './message.js';

export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export class WebhookChannel {
  constructor(
    private readonly settings: WebhookSettings,
    private readonly now: () => number,
  ) {}

  get key(): string {
    return `webhook ${this.settings.url}`;
  }

  async send(notification: Notification): Promise<void> {
    const sentAt = this.now();
    const body = JSON.stringify({
      ...notification.data,
      subject: notification.subject,
      text: notification.text,
      sentAt: new Date(sentAt).toISOString(),
    });
    const timestamp = String(Math.floor(sentAt / 1000));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': `b365-server/${VERSION}`,
      'x-b365-event': notification.event,
      'x-b365-delivery': randomUUID(),
      'x-b365-timestamp': timestamp,
    };
    if (this.settings.secret) headers['x-b365-signature'] = webhookSignature(this.settings.secret, timestamp, body);
    const response = await fetch(this.settings.url, {
      method: 'POST',
      headers,
      body,
      signal: AbortSignal.timeout(15_000),
    });
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) throw new Error(`${this.settings.url} answered HTTP ${response.status}`);
  }
}
