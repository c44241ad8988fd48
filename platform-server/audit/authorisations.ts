// A record whose audit check failed counts again only with a supervisor's special authorisation,
// recorded (who, when, why, the record's bytes as authorised) in audit_authorisations and, like every
// operator action, in operator_audit ('audit.authorise'), both in one transaction.
import type { Crypto } from '../../hal/crypto';
import { toHex } from '../../protocol/bytes';
import type { Database } from '../core/db';
import { type Role, roleAtLeast } from '../operators/service';
import type { AuditReport } from './audit';

export type AuthorisationRefusal = 'not-supervisor' | 'no-finding' | 'no-record' | 'changed' | 'bad-reason';

/** The authorisation is refused; nothing is written. */
export class AuthorisationRefused extends Error {
  override readonly name: string = 'AuthorisationRefused';
  constructor(
    readonly code: AuthorisationRefusal,
    message: string,
  ) {
    super(message);
  }
}

export interface Supervisor {
  id: number;
  username: string;
  role: Role;
}

export interface AuthorisationRequest {
  report: AuditReport;
  reportSha256: string;
  meterId: number;
  seq: number;
  reason: string;
}

export interface Authorisation {
  id: number;
  meterId: number;
  seq: number;
  finding: string;
  recordSha256: string;
  username: string;
  reason: string;
  at: string;
}

/**
 * Records a supervisor's authorisation of one finding of `report`, for the record as it is stored
 * now: refused when the record changed since the report (its SHA-256 differs).
 */
export async function authoriseFinding(
  db: Database,
  crypto: Crypto,
  supervisor: Supervisor,
  request: AuthorisationRequest,
  now: Date = new Date(),
): Promise<Authorisation> {
  if (!roleAtLeast(supervisor.role, 'supervisor'))
    throw new AuthorisationRefused('not-supervisor', `${supervisor.username} is not a supervisor`);
  const reason = request.reason.trim();
  if (reason.length < 10 || reason.length > 1000)
    throw new AuthorisationRefused('bad-reason', 'the reason must be 10 to 1000 characters');
  const finding = request.report.findings.find((f) => f.meterId === request.meterId && f.seq === request.seq);
  if (!finding)
    throw new AuthorisationRefused(
      'no-finding',
      `the report has no finding for meter ${request.meterId} record ${request.seq}`,
    );
  return db.transaction(async (tx) => {
    const held = await tx.query<{ bytes: Uint8Array }>(
      'SELECT bytes FROM records WHERE meter_id = $1 AND seq = $2 FOR UPDATE',
      [request.meterId, request.seq],
    );
    if (held.rows.length === 0)
      throw new AuthorisationRefused('no-record', `meter ${request.meterId} has no record ${request.seq}`);
    const digest = crypto.sha256(held.rows[0].bytes);
    if (toHex(digest) !== finding.recordSha256)
      throw new AuthorisationRefused('changed', 'the record changed since the report: audit it again');
    const inserted = await tx.query<{ id: number | string }>(
      `INSERT INTO audit_authorisations
         (meter_id, seq, record_sha256, finding, report_sha256, operator_id, username, reason, at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
      [
        request.meterId,
        request.seq,
        digest,
        finding.finding,
        request.reportSha256,
        supervisor.id,
        supervisor.username,
        reason,
        now,
      ],
    );
    await tx.query(
      `INSERT INTO operator_audit (operator_id, username, action, meter_id, target, detail, at)
       VALUES ($1, $2, 'audit.authorise', $3, $4, $5, $6)`,
      [
        supervisor.id,
        supervisor.username,
        request.meterId,
        `record ${request.seq}`,
        JSON.stringify({
          finding: finding.finding,
          recordSha256: finding.recordSha256,
          reportSha256: request.reportSha256,
          reason,
        }),
        now,
      ],
    );
    return {
      id: Number(inserted.rows[0].id),
      meterId: request.meterId,
      seq: request.seq,
      finding: finding.finding,
      recordSha256: finding.recordSha256,
      username: supervisor.username,
      reason,
      at: now.toISOString(),
    };
  });
}
