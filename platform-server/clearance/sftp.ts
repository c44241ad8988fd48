// Delivery to the acquirer over SFTP (the seed's SSH channel), with ssh2-sftp-client: key
// authentication, the server's host key pinned by its SHA-256 fingerprint (as `ssh-keygen -l`
// prints it, "SHA256:…"), files written under a temporary name and renamed, so the acquirer never
// picks up half a file.
import { createHash } from 'node:crypto';
import SftpClient from 'ssh2-sftp-client';

export interface SftpTarget {
  host: string;
  port: number;
  username: string;
  /** The private key (OpenSSH PEM). */
  privateKey: string | Buffer;
  /** "SHA256:<base64>" of the server's host key: any other key is refused. */
  hostKeySha256: string;
  /** Where settlement files go. */
  outbox: string;
  /** Where the acquirer leaves its responses. */
  inbox: string;
}

export interface SftpTransport {
  upload(target: SftpTarget, files: { name: string; content: string }[]): Promise<void>;
  /** The files in the inbox whose names match. */
  download(target: SftpTarget, name: RegExp): Promise<{ name: string; content: string }[]>;
}

export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

async function connected<T>(target: SftpTarget, work: (client: SftpClient) => Promise<T>): Promise<T> {
  const client = new SftpClient('parklink-clearance');
  let offered: string | undefined;
  try {
    await client.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.privateKey,
      readyTimeout: 20_000,
      hostVerifier: (key: Buffer) => {
        offered = hostKeyFingerprint(key);
        return offered === target.hostKeySha256;
      },
    });
  } catch (error) {
    if (offered !== undefined && offered !== target.hostKeySha256)
      throw new Error(`the SFTP server's host key ${offered} is not the pinned ${target.hostKeySha256}`);
    throw error;
  }
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

export const sftpTransport: SftpTransport = {
  upload: (target, files) =>
    connected(target, async (client) => {
      for (const file of files) {
        const final = `${target.outbox}/${file.name}`;
        const partial = `${final}.part`;
        await client.put(Buffer.from(file.content), partial);
        await client.rename(partial, final);
      }
    }),
  download: (target, name) =>
    connected(target, async (client) => {
      const listing = await client.list(target.inbox);
      const files: { name: string; content: string }[] = [];
      for (const entry of listing
        .filter((e) => e.type === '-' && name.test(e.name))
        .sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const content = (await client.get(`${target.inbox}/${entry.name}`)) as Buffer;
        files.push({ name: entry.name, content: content.toString('utf8') });
      }
      return files;
    }),
};
