// E-mail out of the platform: alarm forwarding to operators and receipts to drivers, through SMTP
// with nodemailer. Configured once (PARKLINK_SMTP_URL); without it nothing claims to send e-mail.
import nodemailer, { type Transporter } from 'nodemailer';

export interface MailAttachment {
  filename: string;
  content: Buffer;
  contentType: string;
}

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  attachments?: MailAttachment[];
}

/** Sends an e-mail; resolves once the server took it. */
export interface MailSender {
  send(message: MailMessage): Promise<void>;
}

/** SMTP through nodemailer; `url` as nodemailer takes it (smtp://user:pass@host:587, smtps://…). */
export class SmtpMailSender implements MailSender {
  readonly #transport: Transporter;
  constructor(
    url: string,
    readonly from: string,
  ) {
    this.#transport = nodemailer.createTransport(url);
  }

  async send(message: MailMessage): Promise<void> {
    await this.#transport.sendMail({ from: this.from, ...message });
  }

  close(): void {
    this.#transport.close();
  }
}
