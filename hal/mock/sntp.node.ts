// The SNTP twin's datagrams over real UDP (Node only): each request from its own socket to
// host:port, answers read until closed. Tests run a small SNTP server on 127.0.0.1 with it.
import dgram from 'node:dgram';
import type { DatagramPort } from './sntp';

export class UdpDatagramPort implements DatagramPort {
  readonly #port: number;

  /** `port`: the server's UDP port (123 for a real server; a test server's own port). */
  constructor(port = 123) {
    this.#port = port;
  }

  send(host: string, packet: Uint8Array, onAnswer: (packet: Uint8Array) => void): { close(): void } {
    const socket = dgram.createSocket('udp4');
    let closed = false;
    socket.on('message', (message) => {
      if (!closed) onAnswer(new Uint8Array(message));
    });
    socket.on('error', () => {
      if (!closed) close();
    });
    const close = () => {
      closed = true;
      socket.close();
    };
    socket.send(packet, this.#port, host);
    return { close: () => (closed ? undefined : close()) };
  }
}

/** A UDP server answering SNTP with `answer` (VirtualSntpServer.answer), on a free port of 127.0.0.1. */
export async function startUdpSntpServer(
  answer: (request: Uint8Array) => Uint8Array | undefined,
): Promise<{ port: number; close(): Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, from) => {
    const reply = answer(new Uint8Array(message));
    if (reply) socket.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
