// A report as CSV (csv-stringify: a header line, the rows, a totals line) and as PDF (pdfkit: A4
// landscape, the title, range and zone, the table with its header repeated on each page, the totals,
// "page n of N").
import PDFDocument from 'pdfkit';
import { stringify } from 'csv-stringify/sync';
import type { Report } from './service';

const cell = (report: Report, key: string, value: string | number | null | undefined): string => {
  if (value === null || value === undefined) return '';
  const column = report.columns.find((c) => c.key === key);
  return column?.money && typeof value === 'number' ? (value / 100).toFixed(2) : String(value);
};

export function reportCsv(report: Report): string {
  const keys = report.columns.map((c) => c.key);
  const lines: string[][] = [report.columns.map((c) => c.title)];
  for (const row of report.rows) lines.push(keys.map((k) => cell(report, k, row[k])));
  if (Object.keys(report.totals).length > 0)
    lines.push(
      keys.map((k, i) => (i === 0 ? 'Total' : k in report.totals ? cell(report, k, report.totals[k]) : '')),
    );
  return stringify(lines);
}

export function reportPdf(report: Report, generatedAt: Date): Promise<Buffer> {
  const doc = new PDFDocument({
    size: 'A4',
    layout: 'landscape',
    margin: 36,
    bufferPages: true,
    info: { Title: report.title, Author: 'ParkLink', CreationDate: generatedAt },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });

  const left = doc.page.margins.left;
  const width = doc.page.width - left - doc.page.margins.right;
  const bottom = doc.page.height - doc.page.margins.bottom - 20;
  const columnWidth = width / report.columns.length;
  const rowHeight = 14;

  doc.font('Helvetica-Bold').fontSize(14).text(report.title, left, doc.page.margins.top);
  doc
    .font('Helvetica')
    .fontSize(9)
    .text(
      `${report.from} to ${report.to} (the day after the last), days in ${report.timeZone}; generated ${generatedAt.toISOString()}` +
        (report.next ? `; continues from ${report.next}` : ''),
    );
  doc.moveDown(0.8);

  const line = (values: string[], bold: boolean) => {
    if (doc.y + rowHeight > bottom) {
      doc.addPage();
      doc.y = doc.page.margins.top;
      header();
    }
    const y = doc.y;
    doc.font(bold ? 'Helvetica-Bold' : 'Helvetica').fontSize(8);
    values.forEach((value, i) => {
      const numeric = i > 0 && /^-?[\d.]+$/.test(value);
      doc.text(value, left + i * columnWidth + 2, y, {
        width: columnWidth - 4,
        height: rowHeight,
        ellipsis: true,
        lineBreak: false,
        align: numeric ? 'right' : 'left',
      });
    });
    doc.y = y + rowHeight;
  };
  const header = () => {
    line(
      report.columns.map((c) => c.title),
      true,
    );
    doc
      .moveTo(left, doc.y - 2)
      .lineTo(left + width, doc.y - 2)
      .stroke();
  };

  header();
  const keys = report.columns.map((c) => c.key);
  for (const row of report.rows)
    line(
      keys.map((k) => cell(report, k, row[k])),
      false,
    );
  if (report.rows.length === 0) line(['No data in this range.'], false);
  if (Object.keys(report.totals).length > 0) {
    doc
      .moveTo(left, doc.y + 1)
      .lineTo(left + width, doc.y + 1)
      .stroke();
    doc.y += 3;
    line(
      keys.map((k, i) => (i === 0 ? 'Total' : k in report.totals ? cell(report, k, report.totals[k]) : '')),
      true,
    );
  }

  const range = doc.bufferedPageRange();
  for (let i = 0; i < range.count; i++) {
    doc.switchToPage(range.start + i);
    // Below the bottom margin: without this pdfkit would start a page for the footer.
    const margin = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    doc
      .font('Helvetica')
      .fontSize(8)
      .text(`Page ${i + 1} of ${range.count}`, left, doc.page.height - margin + 10, {
        width,
        align: 'right',
        lineBreak: false,
      });
    doc.page.margins.bottom = margin;
  }
  doc.end();
  return done;
}
