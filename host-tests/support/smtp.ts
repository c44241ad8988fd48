// A real SMTP server for the tests that send e-mail: Debian's python3-aiosmtpd on a free port of
// loopback, printing every message it takes (its Debugging handler).
import { type ChildProcess, spawn } from 'node:child_process';
import { type AddressInfo, createConnection, createServer as createTcpServer } from 'node:net';

async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: '127.0.0.1' }, () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

const MESSAGE_START = '---------- MESSAGE FOLLOWS ----------';
const MESSAGE_END = '------------ END MESSAGE ------------';

export interface SmtpServer {
  port: number;
  /** Everything printed so far, header lines unfolded; the last message may be half printed. */
  output: () => string;
  /**
   * The first message printed in full so far (header lines unfolded) that holds `text`, a subject
   * line say.
   */
  messageWith: (text: string) => string | undefined;
  stop: () => void;
}

/**
 * Debian's aiosmtpd with its Debugging handler: every message it takes is printed on stdout, a
 * line at a time, so a test that saw the subject waits for the message's end line before reading
 * the rest (messageWith()).
 */
export async function startSmtpServer(): Promise<SmtpServer> {
  const port = await freePort();
  let output = '';
  const child: ChildProcess = spawn(
    '/usr/bin/python3',
    ['-u', '-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${port}`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  await waitForPort(port);
  // Header lines folded by the client are unfolded (RFC 5322 2.2.3).
  const unfolded = () => output.replace(/\r?\n[ \t]+/g, ' ');
  const messages = () =>
    unfolded()
      .split(MESSAGE_START)
      .slice(1)
      .filter((part) => part.includes(MESSAGE_END))
      .map((part) => part.slice(0, part.indexOf(MESSAGE_END)));
  const messageWith = (text: string) => messages().find((message) => message.includes(text));
  return { port, output: unfolded, messageWith, stop: () => child.kill() };
}
