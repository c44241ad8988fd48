// What a PDF made by pdfkit says, for the tests of reports and receipts.
import { inflateSync } from 'node:zlib';

/** The text a PDF shows, from its Flate-compressed content streams (pdfkit writes hex strings). */
export function pdfText(pdf: Buffer): string {
  let text = '';
  const source = pdf.toString('latin1');
  for (const match of source.matchAll(/stream\r?\n/g)) {
    const start = (match.index ?? 0) + match[0].length;
    const end = source.indexOf('endstream', start);
    try {
      const content = inflateSync(pdf.subarray(start, end)).toString('latin1');
      for (const hex of content.matchAll(/<([0-9a-f]+)>/gi))
        text += Buffer.from(hex[1], 'hex').toString('latin1');
      text += '\n';
    } catch {}
  }
  return text;
}
