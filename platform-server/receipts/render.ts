// A receipt as a PDF (pdfkit, A4): what was bought, where and when in the city's time, then the
// chain proof in full with how to check it by hand.
import PDFDocument from 'pdfkit';
import { formatMoney } from '../../firmware/units/format';
import type { Receipt } from './service';

export function receiptText(receipt: Receipt, timeZone: string): string {
  const at = (iso: string) => localTime(iso, timeZone);
  return [
    `ParkLink parking receipt ${receipt.code}`,
    '',
    `Meter ${receipt.meter.id} ${receipt.meter.name}${receipt.meter.address ? `, ${receipt.meter.address}` : ''}, bay ${receipt.bayId}`,
    `Paid ${formatMoney(receipt.charge, receipt.currency)} for ${receipt.minutes} min, card ${receipt.cardType} ending ${receipt.cardLast4}`,
    `From ${at(receipt.paidFrom)} until ${at(receipt.paidUntil)} (${timeZone})`,
    `Transaction ${receipt.transactionNumber}, record ${receipt.proof.seq} of the meter's hash chain`,
    '',
    "The PDF attached holds the meter's record and its chain proof.",
  ].join('\n');
}

export function receiptPdf(receipt: Receipt, timeZone: string, generatedAt: Date): Promise<Buffer> {
  const doc = new PDFDocument({
    size: 'A4',
    margin: 48,
    info: { Title: `ParkLink receipt ${receipt.code}`, Author: 'ParkLink', CreationDate: generatedAt },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  const at = (iso: string) => `${localTime(iso, timeZone)} (${timeZone})`;
  const pair = (label: string, value: string) => {
    doc.font('Helvetica-Bold').fontSize(10).text(`${label}: `, { continued: true });
    doc.font('Helvetica').text(value);
  };
  const mono = (label: string, hex: string) => {
    doc.font('Helvetica-Bold').fontSize(9).text(label);
    doc
      .font('Courier')
      .fontSize(8)
      .text(hex.replace(/(.{64})/g, '$1\n').trim());
    doc.moveDown(0.3);
  };

  doc.font('Helvetica-Bold').fontSize(18).text('Parking receipt');
  doc.font('Helvetica').fontSize(11).text(`Receipt code ${receipt.code}`);
  doc.moveDown();
  pair('Meter', `${receipt.meter.id} ${receipt.meter.name}`);
  if (receipt.meter.address) pair('Address', receipt.meter.address);
  if (receipt.meter.area) pair('Area', receipt.meter.area);
  pair('Bay', String(receipt.bayId));
  pair('Paid', formatMoney(receipt.charge, receipt.currency));
  pair('Time bought', `${receipt.minutes} min`);
  pair('Valid from', at(receipt.paidFrom));
  pair('Valid until', at(receipt.paidUntil));
  pair('Card', `${receipt.cardType}, ending ${receipt.cardLast4}`);
  pair('Transaction number', String(receipt.transactionNumber));
  pair('Recorded by the meter', at(receipt.recordedAt));
  pair('Received by ParkLink', at(receipt.receivedAt));

  const proof = receipt.proof;
  doc.moveDown();
  doc.font('Helvetica-Bold').fontSize(13).text('Chain proof');
  doc
    .font('Helvetica')
    .fontSize(9)
    .text(
      `The meter keeps its records in a hash chain: each record's link is ${proof.algorithm}. ` +
        'Changing, removing or reordering any record changes every later link. The record below is the ' +
        "meter's own bytes; hash the previous link followed by them and compare with the link " +
        `(for example: echo <previous link><record> | xxd -r -p | sha256sum).`,
    );
  doc.moveDown(0.5);
  pair('Record', `${proof.seq} of meter ${receipt.meter.id}`);
  pair(
    'Checked by ParkLink on issue',
    proof.verified ? 'the link matches' : 'THE LINK DOES NOT MATCH: this record is not proven',
  );
  doc.moveDown(0.3);
  mono(
    proof.previousIsGenesis
      ? "Previous link (the chain's start for this meter)"
      : `Previous link (record ${proof.seq - 1})`,
    proof.previousLink || 'not held',
  );
  mono('Record bytes', proof.record);
  mono('Link', proof.link);
  mono(`Next link (record ${proof.seq + 1})`, proof.nextLink ?? 'not yet received');
  mono(`Latest link held (record ${proof.latestSeq})`, proof.latestLink);
  doc.font('Helvetica').fontSize(8).text(`Issued ${generatedAt.toISOString()}`);
  doc.end();
  return done;
}

function localTime(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone,
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  }).format(new Date(iso));
}
