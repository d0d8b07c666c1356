// E-mail notifications over SMTP (nodemailer), with the settings of the server config.
import nodemailer, { type Transporter } from 'nodemailer';
import type { SmtpSettings } from '../config.js';
import type { Notification } from './message.js';

export class EmailChannel {
  private readonly transport: Transporter;

  constructor(private readonly settings: SmtpSettings) {
    this.transport = nodemailer.createTransport({
      host: settings.host,
      port: settings.port,
      secure: settings.secure,
      requireTLS: settings.requireTLS,
      auth: settings.user ? { user: settings.user, pass: settings.password ?? '' } : undefined,
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      socketTimeout: 30_000,
    });
  }

  get key(): string {
    return 'email';
  }

  async send(notification: Notification): Promise<void> {
    await this.transport.sendMail({
      from: this.settings.from,
      to: this.settings.to,
      subject: notification.subject,
      text: notification.text,
      headers: { 'X-B365-Event': notification.event },
    });
  }

  close(): void {
    this.transport.close();
  }
}
