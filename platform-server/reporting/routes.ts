// GET /api/reporting/{revenue|occupancy|events|uptime}?from=&to=&area=&meterId=&pageDays=&pageMeters=
// &afterMeter=&by=&format= (viewer; by=area gives revenue per area, the city summary): as JSON a page
// of days and, for rows per meter, of meters ({ …, next, nextMeters }: the from of the next days, the
// afterMeter of the next meters, null on the last), or the whole range and city as CSV or PDF.
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, sendRefusal } from '../core/errors';
import { u32 } from '../core/schemas';
import type { OperatorGuard } from '../operators/service';
import { reportCsv, reportPdf } from './render';
import {
  DEFAULT_PAGE_METERS,
  MAX_PAGE_DAYS,
  MAX_PAGE_METERS,
  MAX_RANGE_DAYS,
  REPORT_KINDS,
  type ReportKind,
  type ReportingService,
} from './service';

export interface ReportingRoutesOptions {
  service: ReportingService;
  guard: OperatorGuard;
  now?: () => Date;
}

const day = {
  type: 'string',
  pattern: '^\\d{4}-\\d{2}-\\d{2}$',
  description: "a day of the city's, YYYY-MM-DD",
};

export const reportingRoutes: FastifyPluginAsync<ReportingRoutesOptions> = async (app, options) => {
  const { service, guard } = options;
  const now = options.now ?? (() => new Date());
  app.get<{
    Params: { kind: ReportKind };
    Querystring: {
      from: string;
      to: string;
      area?: string;
      meterId?: number;
      pageDays?: number;
      pageMeters?: number;
      afterMeter?: string;
      by?: 'meter' | 'area';
      format: 'json' | 'csv' | 'pdf';
    };
  }>(
    '/api/reporting/:kind',
    {
      onRequest: guard.requireRole('viewer'),
      schema: {
        summary:
          'A report of the city: revenue, occupancy, events or uptime over a range of days, as JSON (paged by days and meters), CSV or PDF',
        params: {
          type: 'object',
          properties: { kind: { type: 'string', enum: [...REPORT_KINDS] } },
          required: ['kind'],
        },
        querystring: {
          type: 'object',
          properties: {
            from: day,
            to: { ...day, description: 'the day after the last one' },
            area: { type: 'string', minLength: 1, maxLength: 64 },
            meterId: u32,
            pageDays: { type: 'integer', minimum: 1, maximum: MAX_PAGE_DAYS },
            pageMeters: {
              type: 'integer',
              minimum: 1,
              maximum: MAX_PAGE_METERS,
              default: DEFAULT_PAGE_METERS,
              description: 'JSON rows per meter: meters per page',
            },
            afterMeter: {
              type: 'string',
              minLength: 1,
              maxLength: 400,
              description: "the previous page's nextMeters",
            },
            by: {
              type: 'string',
              enum: ['meter', 'area'],
              description: 'revenue: a row per meter (default) or per area, the city summary',
            },
            format: { type: 'string', enum: ['json', 'csv', 'pdf'], default: 'json' },
          },
          required: ['from', 'to'],
          additionalProperties: false,
        },
        response: {
          200: {
            description: `the report (a range of at most ${MAX_RANGE_DAYS} days)`,
            content: {
              'application/json': { schema: { type: 'object', additionalProperties: true } },
              'text/csv': { schema: { type: 'string' } },
              'application/pdf': { schema: { type: 'string', format: 'binary' } },
            },
          },
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const { kind } = request.params;
      const { format, pageDays, pageMeters, ...range } = request.query;
      try {
        // CSV and PDF are whole documents: the whole range and every meter in one page.
        const report = await service.report(kind, {
          ...range,
          pageDays: format === 'json' ? pageDays : MAX_RANGE_DAYS,
          pageMeters: format === 'json' ? pageMeters : undefined,
        });
        const name = `parklink-${kind}-${report.from}-${report.to}`;
        if (format === 'csv')
          return reply
            .header('content-type', 'text/csv; charset=utf-8')
            .header('content-disposition', `attachment; filename="${name}.csv"`)
            .send(reportCsv(report));
        if (format === 'pdf')
          return reply
            .header('content-type', 'application/pdf')
            .header('content-disposition', `attachment; filename="${name}.pdf"`)
            .send(await reportPdf(report, now()));
        return reply.send(report);
      } catch (error) {
        return sendRefusal(reply, error);
      }
    },
  );
};
