// The clearance unit (14): settlement batches, their signed files over SFTP, reconciliation and the
// exception queue (docs/clearance.md).
export { FORMAT_VERSION, parseResponse, ResponseFileError, settlementFile } from './format';
export { clearanceRoutes } from './routes';
export { type Batch, ClearanceService, type ClearanceOptions, type Reconciliation } from './service';
export { hostKeyFingerprint, type SftpTarget, type SftpTransport, sftpTransport } from './sftp';
