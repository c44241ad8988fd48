// The reporting room: the city's reports of money and operations (docs/reporting.md).
export { reportCsv, reportPdf } from './render';
export { reportingRoutes } from './routes';
export { REPORT_KINDS, ReportingService, type Report, type ReportKind } from './service';
