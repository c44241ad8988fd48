// The platform's configuration: what createPlatform takes, and how the environment gives it
// (DATABASE_URL, MQTT_URL, PORT, PARKLINK_*).
import { readFileSync } from 'node:fs';
import type { SftpTarget, SftpTransport } from './clearance/sftp';
import { ConfigError } from './core/errors';
import type { HistoryConfig } from './history';
import { DEFAULT_RETENTION_MONTHS, MIN_RETENTION_MONTHS } from './history/partitions';
import type { Logger, StoredRecord } from './ingest/gate';
import type { HsmConfig } from './keys/hsm';
import type { OperatorsConfig } from './operators';
import type { AlarmOptions } from './alarms/service';
import type { ForwardingConfig } from './alarms';
import { type MailSender, SmtpMailSender } from './core/mail';
import type { ReceiptLimits } from './receipts';
import type { PhoneConfig } from './phone';
import { type SmsSender, WebhookSmsSender } from './fleet/callIn';

export interface PlatformConfig {
  /** How often the console's live feed looks for changed meters, ms (default 1000). */
  consolePollMs?: number;
  /** postgres://… (DATABASE_URL); PGlite when absent. */
  databaseUrl?: string;
  /** PGlite data directory (PARKLINK_DATA_DIR); in memory when absent. */
  dataDir?: string;
  /** PGlite in memory: start from this data directory tarball (core/db.ts pgliteSnapshot). */
  pgliteSnapshot?: Blob;
  /** mqtt://… (MQTT_URL); an embedded aedes broker when absent. */
  mqttUrl?: string;
  /** Whether the external broker delivers `$share/…` subscriptions (MQTT_SHARED=0 to disable). */
  sharedSubscriptions?: boolean;
  /** The ingest instances' shared-subscription group (MQTT_SHARE_GROUP), default "ingest". */
  shareGroup?: string;
  /**
   * Which proxies to believe about the client's address (PARKLINK_TRUST_PROXY): `true` (any), or a
   * comma-separated list of addresses and CIDRs, as Fastify's trustProxy takes them. Behind a
   * reverse proxy it must be set, or every client (and the per-address login limit) shares one address.
   */
  trustProxy?: boolean | string;
  /**
   * TLS (PEM certificate chain and key; PARKLINK_TLS_CERT_FILE, PARKLINK_TLS_KEY_FILE): HTTPS for the
   * API, and mqtts for meters on the embedded broker.
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** HTTP port for listen() (PORT), default 8080. */
  port?: number;
  host?: string;
  /**
   * The master key in an HSM through PKCS#11 (PARKLINK_HSM_MODULE, PARKLINK_HSM_TOKEN or
   * PARKLINK_HSM_SLOT, PARKLINK_HSM_PIN, PARKLINK_HSM_KEY_LABEL); wins over the options below.
   */
  hsm?: HsmConfig;
  /** Master key: 64 hex digits (PARKLINK_MASTER_KEY) or 32 bytes. */
  masterKey?: string | Uint8Array;
  /** Passphrase-protected keystore file (PARKLINK_KEYSTORE_FILE, PARKLINK_KEYSTORE_PASSPHRASE). */
  keystoreFile?: string;
  keystorePassphrase?: string;
  /** Create the keystore file with a new master key when missing (PARKLINK_KEYSTORE_CREATE=1). */
  createKeystoreFile?: boolean;
  /** Fastify's logger: true (pino, info), false (silent) or pino options. Default true. */
  httpLogger?: boolean | { level: string };
  /** Ingest's logger; fastify's when absent. */
  logger?: Logger;
  /** Called once per record newly stored. */
  onStored?: (stored: StoredRecord) => void;
  /**
   * Demo mode (PARKLINK_DEMO=1; `npm start` sets it): the SMS and voice gateway may run without its
   * secret, taking unsigned posts. Never for a deployment.
   */
  demo?: boolean;
  /** Pay by phone: clock, pricing, channels; see platform-server/phone/README.md. */
  phone?: PhoneConfig;
  /**
   * The APDS API: the IANA time zone of the city's places (PARKLINK_APDS_TIME_ZONE, default UTC),
   * and webhook retry delays and attempts (tests shorten them).
   */
  apds?: { retryDelayMs?: (attempt: number) => number; maxAttempts?: number; timeZone?: string };
  /**
   * The clearance unit: the acquirer's name (PARKLINK_ACQUIRER, default "acquirer") and its SFTP
   * server (PARKLINK_SFTP_HOST, _PORT, _USER, _KEY_FILE, _HOST_KEY "SHA256:…", _OUTBOX, _INBOX).
   */
  clearance?: { acquirer?: string; sftp?: SftpTarget; transport?: SftpTransport };
  /** Operator accounts: the first admin (PARKLINK_ADMIN_USER, PARKLINK_ADMIN_PASSWORD), sessions, lockout. */
  operators?: OperatorsConfig;
  /** The SMS sender for call-in (PARKLINK_SMS_WEBHOOK, PARKLINK_SMS_WEBHOOK_SECRET); none: call-in is off. */
  smsSender?: SmsSender;
  /** The alarm inbox: clock, low-battery level, overdue limit and sweep period (alarms/service.ts). */
  alarms?: Omit<AlarmOptions, 'db' | 'logger'>;
  /**
   * Alarm forwarding: the mail server (PARKLINK_SMTP_URL, PARKLINK_ALARM_MAIL_FROM; without one,
   * e-mail rules are refused), retries and the delivery pass (alarms/forwarding.ts). SMS goes
   * through `smsSender`.
   */
  alarmForwarding?: ForwardingConfig;
  /**
   * The platform's mail server (PARKLINK_SMTP_URL): drivers' e-mails and receipts go through it, as
   * alarm forwarding's do. Without one, e-mail receipts are refused, never pretended.
   */
  mail?: MailSender;
  /** The receipt page's rate limits (tests set tighter ones). */
  receiptLimits?: ReceiptLimits;
  /** Tariff pushes: how long one waits for the meter's acknowledgement before it is 'timed-out'; the clock. */
  tariffs?: { pushTimeoutSeconds?: number; now?: () => number };
  /**
   * The firmware release key's public half (Ed25519, 64 hex digits; PARKLINK_FIRMWARE_RELEASE_KEY),
   * the one pinned in the meters: an image, and reader firmware, is stored only when its signature
   * verifies under it.
   * Absent: the firmware room refuses uploads (503).
   */
  firmwareReleaseKey?: Uint8Array;
  /**
   * Records and sales by month (history/): months kept (PARKLINK_RECORD_RETENTION_MONTHS, default
   * 96, at least 84) and where an expired month is archived before it is dropped
   * (PARKLINK_ARCHIVE_DIR; without it nothing is dropped).
   */
  history?: HistoryConfig;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): PlatformConfig {
  const config: PlatformConfig = {};
  if (env.DATABASE_URL) config.databaseUrl = env.DATABASE_URL;
  if (env.PARKLINK_DATA_DIR) config.dataDir = env.PARKLINK_DATA_DIR;
  if (env.PARKLINK_APDS_TIME_ZONE) config.apds = { timeZone: env.PARKLINK_APDS_TIME_ZONE };
  if (env.PARKLINK_RECORD_RETENTION_MONTHS || env.PARKLINK_ARCHIVE_DIR) {
    const months = Number(env.PARKLINK_RECORD_RETENTION_MONTHS ?? DEFAULT_RETENTION_MONTHS);
    if (!Number.isInteger(months) || months < MIN_RETENTION_MONTHS)
      throw new ConfigError(
        `PARKLINK_RECORD_RETENTION_MONTHS is a whole number of months, at least ${MIN_RETENTION_MONTHS} (records are kept seven years for audit)`,
      );
    config.history = {
      retentionMonths: months,
      ...(env.PARKLINK_ARCHIVE_DIR ? { archiveDir: env.PARKLINK_ARCHIVE_DIR } : {}),
    };
  }
  if (env.PARKLINK_ACQUIRER) config.clearance = { acquirer: env.PARKLINK_ACQUIRER };
  if (env.PARKLINK_SFTP_HOST) {
    const missing = ['USER', 'KEY_FILE', 'HOST_KEY', 'OUTBOX', 'INBOX'].filter(
      (k) => !env[`PARKLINK_SFTP_${k}`],
    );
    if (missing.length > 0)
      throw new ConfigError(
        `PARKLINK_SFTP_HOST is set: set ${missing.map((k) => `PARKLINK_SFTP_${k}`).join(', ')} too`,
      );
    config.clearance = {
      ...config.clearance,
      sftp: {
        host: env.PARKLINK_SFTP_HOST,
        port: Number(env.PARKLINK_SFTP_PORT ?? 22),
        username: env.PARKLINK_SFTP_USER as string,
        privateKey: readFileSync(env.PARKLINK_SFTP_KEY_FILE as string),
        hostKeySha256: env.PARKLINK_SFTP_HOST_KEY as string,
        outbox: env.PARKLINK_SFTP_OUTBOX as string,
        inbox: env.PARKLINK_SFTP_INBOX as string,
      },
    };
  }
  if (env.MQTT_URL) config.mqttUrl = env.MQTT_URL;
  if (env.MQTT_SHARED === '0' || env.MQTT_SHARED === 'false') config.sharedSubscriptions = false;
  if (env.MQTT_SHARE_GROUP) config.shareGroup = env.MQTT_SHARE_GROUP;
  if (env.PARKLINK_SMS_WEBHOOK)
    config.smsSender = new WebhookSmsSender({
      url: env.PARKLINK_SMS_WEBHOOK,
      ...(env.PARKLINK_SMS_WEBHOOK_SECRET ? { secret: env.PARKLINK_SMS_WEBHOOK_SECRET } : {}),
    });
  if (env.PARKLINK_SMTP_URL) {
    if (!env.PARKLINK_ALARM_MAIL_FROM)
      throw new ConfigError(
        "PARKLINK_SMTP_URL is set: set PARKLINK_ALARM_MAIL_FROM, the sender of the platform's e-mails (alarms and receipts)",
      );
    config.mail = new SmtpMailSender(env.PARKLINK_SMTP_URL, env.PARKLINK_ALARM_MAIL_FROM);
    config.alarmForwarding = { mail: config.mail };
  }
  if (env.PORT) {
    const port = Number(env.PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new Error(`PORT ${env.PORT} is not a port`);
    config.port = port;
  }
  if (env.HOST) config.host = env.HOST;
  if (env.PARKLINK_TLS_CERT_FILE || env.PARKLINK_TLS_KEY_FILE) {
    if (!env.PARKLINK_TLS_CERT_FILE || !env.PARKLINK_TLS_KEY_FILE)
      throw new ConfigError('PARKLINK_TLS_CERT_FILE and PARKLINK_TLS_KEY_FILE go together');
    config.tls = {
      cert: readFileSync(env.PARKLINK_TLS_CERT_FILE),
      key: readFileSync(env.PARKLINK_TLS_KEY_FILE),
    };
  }
  if (env.PARKLINK_TRUST_PROXY) {
    const trust = env.PARKLINK_TRUST_PROXY;
    config.trustProxy = trust === 'true' ? true : trust;
  }
  if (env.PARKLINK_HSM_MODULE) {
    if (!env.PARKLINK_HSM_PIN) throw new Error('PARKLINK_HSM_MODULE needs PARKLINK_HSM_PIN');
    config.hsm = { module: env.PARKLINK_HSM_MODULE, pin: env.PARKLINK_HSM_PIN };
    if (env.PARKLINK_HSM_TOKEN) config.hsm.tokenLabel = env.PARKLINK_HSM_TOKEN;
    if (env.PARKLINK_HSM_SLOT) config.hsm.slot = env.PARKLINK_HSM_SLOT;
    if (env.PARKLINK_HSM_KEY_LABEL) config.hsm.keyLabel = env.PARKLINK_HSM_KEY_LABEL;
  }
  if (env.PARKLINK_MASTER_KEY) config.masterKey = env.PARKLINK_MASTER_KEY;
  if (env.PARKLINK_KEYSTORE_FILE) config.keystoreFile = env.PARKLINK_KEYSTORE_FILE;
  if (env.PARKLINK_KEYSTORE_PASSPHRASE) config.keystorePassphrase = env.PARKLINK_KEYSTORE_PASSPHRASE;
  if (env.PARKLINK_KEYSTORE_CREATE === '1') config.createKeystoreFile = true;
  if (env.PARKLINK_DEMO === '1') config.demo = true;
  if (env.PARKLINK_FIRMWARE_RELEASE_KEY) {
    const hex = env.PARKLINK_FIRMWARE_RELEASE_KEY;
    if (!/^[0-9a-fA-F]{64}$/.test(hex))
      throw new ConfigError('PARKLINK_FIRMWARE_RELEASE_KEY is not 64 hex digits (an Ed25519 public key)');
    config.firmwareReleaseKey = new Uint8Array(Buffer.from(hex, 'hex'));
  }
  if (env.LOG_LEVEL) config.httpLogger = { level: env.LOG_LEVEL };
  if (env.PARKLINK_ADMIN_USER || env.PARKLINK_ADMIN_PASSWORD) {
    if (!env.PARKLINK_ADMIN_USER || !env.PARKLINK_ADMIN_PASSWORD)
      throw new Error('PARKLINK_ADMIN_USER and PARKLINK_ADMIN_PASSWORD go together');
    config.operators = {
      admin: { username: env.PARKLINK_ADMIN_USER, password: env.PARKLINK_ADMIN_PASSWORD },
    };
  }
  if (env.PARKLINK_REQUIRE_MFA === '1') config.operators = { ...config.operators, requireMfa: true };
  return config;
}
