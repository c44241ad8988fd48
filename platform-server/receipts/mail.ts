// The outbox's e-mail channel over SMTP: a driver's alerts and confirmations as plain text, and a
// sale's receipt with its PDF attached (rendered at delivery from the stored record).
import type { MailSender } from '../core/mail';
import type { ChannelAdapter, OutgoingMessage } from '../phone/channels';
import { receiptPdf } from './render';
import type { ReceiptService } from './service';

const SUBJECTS: Record<string, string> = {
  receipt: 'Your ParkLink parking receipt',
  expiry: 'Your ParkLink parking is ending',
  grace: 'Your ParkLink parking has ended',
  'auto-extension': 'Your ParkLink parking was extended',
  'auto-extension-failed': 'Your ParkLink parking could not be extended',
  confirmation: 'ParkLink: payment confirmed',
  refund: 'ParkLink: a refund',
  voided: 'ParkLink: a payment cancelled',
  'penalty-notice': 'ParkLink: a penalty notice',
};

export class EmailAdapter implements ChannelAdapter {
  readonly name = 'smtp';
  constructor(
    private readonly mail: MailSender,
    private readonly receipts: ReceiptService,
    private readonly timeZone: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async deliver(message: OutgoingMessage): Promise<void> {
    const subject = SUBJECTS[message.kind] ?? 'A message from ParkLink';
    if (!message.receiptCode) {
      await this.mail.send({ to: message.recipient, subject, text: message.body });
      return;
    }
    const receipt = await this.receipts.find(message.receiptCode);
    await this.mail.send({
      to: message.recipient,
      subject: `${subject} ${receipt.code}`,
      text: message.body,
      attachments: [
        {
          filename: `parklink-receipt-${receipt.code}.pdf`,
          content: await receiptPdf(receipt, this.timeZone, this.now()),
          contentType: 'application/pdf',
        },
      ],
    });
  }
}
