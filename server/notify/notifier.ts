// The notification outbox: every message is written to the catalog first, one row per
// channel, and delivered from there with retries, so a mail server or webhook receiver
// that is down delays a notification instead of losing it.
import type { Logger } from '../../src/core/log.js';
import type { Catalog } from '../catalog/catalog.js';
import type { ServerConfig } from '../config.js';
import { EmailChannel } from './email.js';
import type { Notification } from './message.js';
import { WebhookChannel } from './webhook.js';

interface Channel {
  readonly key: string;
  send(notification: Notification): Promise<void>;
  close?(): void;
}

const MAX_ATTEMPTS = 20;
/** Undelivered notifications older than this are dropped (and logged). */
const GIVE_UP_MS = 3 * 86400_000;

export interface DeliveryRecord {
  id: number;
  channel: string;
  event: string;
  subject: string;
  createdAt: number;
  attempts: number;
  deliveredAt: number | null;
  lastError: string | null;
}

export class Notifier {
  private readonly channels = new Map<string, Channel>();
  private dispatching: Promise<void> | null = null;

  constructor(
    private readonly catalog: Catalog,
    config: ServerConfig,
    private readonly log: Logger,
  ) {
    catalog.db.exec(`CREATE TABLE IF NOT EXISTS notifications (
      id INTEGER PRIMARY KEY, channel TEXT NOT NULL, event TEXT NOT NULL, subject TEXT NOT NULL, message TEXT NOT NULL,
      created_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
      delivered_at INTEGER, dropped_at INTEGER, last_error TEXT);
      CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (next_attempt_at) WHERE delivered_at IS NULL AND dropped_at IS NULL;`);
    const channels: Channel[] = [];
    if (config.notifications.email) channels.push(new EmailChannel(config.notifications.email));
    for (const hook of config.notifications.webhooks) channels.push(new WebhookChannel(hook, () => catalog.now()));
    for (const channel of channels) this.channels.set(channel.key, channel);
  }

  get configured(): boolean {
    return this.channels.size > 0;
  }

  /** Queue a message for every channel and start delivering it. */
  enqueue(notification: Notification): void {
    const now = this.catalog.now();
    const insert = this.catalog.db.prepare(
      'INSERT INTO notifications (channel, event, subject, message, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    for (const key of this.channels.keys())
      insert.run(key, notification.event, notification.subject, JSON.stringify(notification), now, now);
    if (this.channels.size === 0)
      this.log.info(
        { event: notification.event, subject: notification.subject },
        'notification (no channel configured)',
      );
    void this.dispatch();
  }

  /** Deliver what is due; concurrent calls share one pass. */
  dispatch(): Promise<void> {
    this.dispatching ??= this.deliverDue().finally(() => {
      this.dispatching = null;
    });
    return this.dispatching;
  }

  private async deliverDue(): Promise<void> {
    for (let pass = 0; pass < 10; pass++) {
      const now = this.catalog.now();
      const due = this.catalog.db
        .prepare(
          'SELECT id, channel, message, attempts, created_at FROM notifications WHERE delivered_at IS NULL AND dropped_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT 100',
        )
        .all(now) as { id: number; channel: string; message: string; attempts: number; created_at: number }[];
      if (due.length === 0) return;
      for (const row of due) {
        const channel = this.channels.get(row.channel);
        if (!channel) {
          this.catalog.db
            .prepare('UPDATE notifications SET dropped_at = ?, last_error = ? WHERE id = ?')
            .run(now, 'channel no longer configured', row.id);
          continue;
        }
        const notification = JSON.parse(row.message) as Notification;
        try {
          await channel.send(notification);
          this.catalog.db
            .prepare(
              'UPDATE notifications SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?',
            )
            .run(this.catalog.now(), row.id);
          this.log.info(
            { channel: row.channel, event: notification.event, subject: notification.subject },
            'notification sent',
          );
        } catch (error) {
          const attempts = row.attempts + 1;
          const message = (error as Error).message;
          const later = this.catalog.now();
          if (attempts >= MAX_ATTEMPTS || later - row.created_at > GIVE_UP_MS) {
            this.catalog.db
              .prepare('UPDATE notifications SET attempts = ?, dropped_at = ?, last_error = ? WHERE id = ?')
              .run(attempts, later, message, row.id);
            this.log.error(
              { channel: row.channel, event: notification.event, attempts, error: message },
              'notification dropped after repeated failures',
            );
          } else {
            const delay = Math.min(3600_000, 15_000 * 2 ** (attempts - 1));
            this.catalog.db
              .prepare('UPDATE notifications SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?')
              .run(attempts, later + delay, message, row.id);
            this.log.warn(
              { channel: row.channel, event: notification.event, attempts, retryInMs: delay, error: message },
              'notification not delivered; will retry',
            );
          }
        }
      }
    }
  }

  deliveries(limit = 200): DeliveryRecord[] {
    return this.catalog.db
      .prepare(
        `SELECT id, channel, event, subject, created_at AS createdAt, attempts, delivered_at AS deliveredAt, last_error AS lastError
         FROM notifications ORDER BY id DESC LIMIT ?`,
      )
      .all(limit) as DeliveryRecord[];
  }

  async close(): Promise<void> {
    await this.dispatching?.catch(() => undefined);
    for (const channel of this.channels.values()) channel.close?.();
  }
}
