// The settlement file (ParkLink → acquirer) and the acquirer's response file, version 1: lines of
// fields separated by '|', ending in '\n', ASCII (docs/clearance.md).
//
//   settlement:  H|PLSETTLE|1|<batch id>|<business day>|<acquirer>|<card type>|<currency>
//                D|<reference>|<meter id>|<record seq or empty>|<renewal id or empty>|<amount>|<occurred at, ISO 8601>
//                T|<detail lines>|<total of amounts>
//   response:    H|PLRESP|1|<batch id>
//                R|<reference>|ACCEPTED or REJECTED|<amount>|<reason or empty>
//                T|<response lines>
import { RequestRefused } from '../core/errors';

export const FORMAT_VERSION = 1;

export interface SettlementLine {
  reference: string;
  meterId: number;
  seq: number | null;
  renewalId: string | null;
  amount: number;
  occurredAt: Date;
}

export interface SettlementHeader {
  batchId: number;
  businessDay: string;
  acquirer: string;
  cardType: string;
  currency: number;
}

const FIELD = /^[^|\n\r]*$/;

function field(value: string, name: string): string {
  if (!FIELD.test(value)) throw new Error(`${name} "${value}" cannot go in a settlement file`);
  return value;
}

export function settlementFile(header: SettlementHeader, lines: SettlementLine[]): string {
  const out = [
    [
      'H',
      'PLSETTLE',
      FORMAT_VERSION,
      header.batchId,
      header.businessDay,
      field(header.acquirer, 'acquirer'),
      field(header.cardType, 'card type'),
      header.currency,
    ].join('|'),
  ];
  for (const l of lines)
    out.push(
      [
        'D',
        field(l.reference, 'reference'),
        l.meterId,
        l.seq ?? '',
        l.renewalId ?? '',
        l.amount,
        l.occurredAt.toISOString(),
      ].join('|'),
    );
  out.push(['T', lines.length, lines.reduce((sum, l) => sum + l.amount, 0)].join('|'));
  return `${out.join('\n')}\n`;
}

export interface ResponseLine {
  line: number;
  reference: string;
  status: 'ACCEPTED' | 'REJECTED';
  amount: number;
  reason: string;
}

/** A response file refused whole: nothing of it is imported. */
export class ResponseFileError extends RequestRefused {
  override readonly name = 'ResponseFileError';
  constructor(message: string, line?: number) {
    super(400, 'bad-response-file', line === undefined ? message : `line ${line}: ${message}`, 'file');
  }
}

/** Parses an acquirer's response; any fault refuses the whole file. */
export function parseResponse(text: string): { batchId: number; lines: ResponseLine[] } {
  if (!text.endsWith('\n')) throw new ResponseFileError('the file does not end with a new line (cut short?)');
  const rows = text.slice(0, -1).split('\n');
  const header = rows[0].split('|');
  if (header[0] !== 'H' || header[1] !== 'PLRESP' || header.length !== 4)
    throw new ResponseFileError('the first line is not a PLRESP header', 1);
  if (header[2] !== String(FORMAT_VERSION))
    throw new ResponseFileError(`version ${header[2]} is not ${FORMAT_VERSION}`, 1);
  const batchId = Number(header[3]);
  if (!/^[1-9][0-9]{0,15}$/.test(header[3])) throw new ResponseFileError('the batch id is not a number', 1);
  const trailer = rows[rows.length - 1].split('|');
  if (rows.length < 2 || trailer[0] !== 'T' || trailer.length !== 2)
    throw new ResponseFileError('the last line is not a trailer (cut short?)', rows.length);
  const lines: ResponseLine[] = [];
  for (let i = 1; i < rows.length - 1; i++) {
    const f = rows[i].split('|');
    if (f[0] !== 'R' || f.length !== 5) throw new ResponseFileError('not a response line', i + 1);
    if (f[2] !== 'ACCEPTED' && f[2] !== 'REJECTED')
      throw new ResponseFileError(`status ${f[2]} is neither ACCEPTED nor REJECTED`, i + 1);
    if (!/^(0|[1-9][0-9]{0,15})$/.test(f[3]))
      throw new ResponseFileError('the amount is not a whole number', i + 1);
    if (!f[1]) throw new ResponseFileError('no reference', i + 1);
    lines.push({ line: i + 1, reference: f[1], status: f[2], amount: Number(f[3]), reason: f[4] });
  }
  if (trailer[1] !== String(lines.length))
    throw new ResponseFileError(
      `the trailer counts ${trailer[1]} lines, the file has ${lines.length}`,
      rows.length,
    );
  return { batchId, lines };
}
