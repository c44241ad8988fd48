// A virtual SNTP exchange speaking the NTP packet format of RFC 4330 (SNTPv4) §4-5: a 48-byte
// packet, LI/VN/Mode in the first byte, stratum, poll, precision, root delay and dispersion,
// reference id, then the reference, originate, receive and transmit timestamps (64-bit, seconds
// since 1900 and a binary fraction). The client behaves as the Moddable SDK's sntp module the
// device uses (modules/network/sntp): it checks the answer is 48 bytes in server mode, discards a
// kiss-o'-death (stratum 0) and reads the transmit timestamp's whole seconds. The server answers
// from a clock the test gives it and can be made to lie, stay silent or send kisses of death.
import type { SntpClient, TimeDone } from '../time';

export const NTP_PACKET_LENGTH = 48;
/** Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (RFC 4330 §3). */
export const NTP_UNIX_OFFSET_S = 2_208_988_800;
const MODE_CLIENT = 3;
const MODE_SERVER = 4;
const VERSION = 4;

/** Writes epoch ms as a 64-bit NTP timestamp at `at`. */
export function writeNtpTimestamp(packet: Uint8Array, at: number, epochMs: number): void {
  const seconds = Math.floor(epochMs / 1000) + NTP_UNIX_OFFSET_S;
  const fraction = Math.floor(((epochMs % 1000) / 1000) * 0x100000000);
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  view.setUint32(at, seconds >>> 0);
  view.setUint32(at + 4, fraction >>> 0);
}

/** Reads a 64-bit NTP timestamp at `at` as epoch ms (era 0). */
export function readNtpTimestamp(packet: Uint8Array, at: number): number {
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const seconds = view.getUint32(at) - NTP_UNIX_OFFSET_S;
  return seconds * 1000 + Math.floor((view.getUint32(at + 4) / 0x100000000) * 1000);
}

/** A client request: LI 0, VN 4, mode 3; the transmit timestamp is the client's clock (RFC 4330 §5). */
export function ntpRequest(clientMs: number): Uint8Array {
  const packet = new Uint8Array(NTP_PACKET_LENGTH);
  packet[0] = (VERSION << 3) | MODE_CLIENT;
  writeNtpTimestamp(packet, 40, clientMs);
  return packet;
}

export interface VirtualSntpFaults {
  /** Added to the server's time in its answers (a wrong or hostile server), ms. */
  liesByMs: number;
  /** Requests go unanswered. */
  silent: boolean;
  /** Answers are kisses of death (stratum 0, "RATE"). */
  kissOfDeath: boolean;
}

/** An SNTP server on a clock: answers a client packet as RFC 4330 §5 describes. */
export class VirtualSntpServer {
  readonly faults: VirtualSntpFaults = { liesByMs: 0, silent: false, kissOfDeath: false };
  requests = 0;
  readonly #now: () => number;

  /** `now`: the true time, epoch ms. */
  constructor(now: () => number) {
    this.#now = now;
  }

  /** The answer to `request`, or undefined when the server says nothing (silent, not a client packet). */
  answer(request: Uint8Array): Uint8Array | undefined {
    this.requests++;
    if (this.faults.silent || request.length < NTP_PACKET_LENGTH || (request[0] & 7) !== MODE_CLIENT)
      return undefined;
    const now = this.#now() + this.faults.liesByMs;
    const packet = new Uint8Array(NTP_PACKET_LENGTH);
    packet[0] = (VERSION << 3) | MODE_SERVER;
    if (this.faults.kissOfDeath) {
      packet.set([0x52, 0x41, 0x54, 0x45], 12); // "RATE" (RFC 4330 §8)
      return packet;
    }
    packet[1] = 1; // stratum 1, primary reference
    packet[2] = request[2]; // poll copied from the request
    packet[3] = 0xec; // precision 2^-20 s
    packet.set([0x47, 0x50, 0x53, 0x00], 12); // reference id "GPS"
    writeNtpTimestamp(packet, 16, now);
    packet.set(request.subarray(40, 48), 24); // originate = the client's transmit timestamp
    writeNtpTimestamp(packet, 32, now);
    writeNtpTimestamp(packet, 40, now);
    return packet;
  }
}

/** Where the client's packets go: a virtual network in tests, a UDP socket under Node (sntp.node.ts). */
export interface DatagramPort {
  /** Sends to `host` port 123; `onAnswer` gets each packet back from it until `close`. */
  send(host: string, packet: Uint8Array, onAnswer: (packet: Uint8Array) => void): { close(): void };
}

/** Hosts and their servers on a virtual network, answering at once. */
export class VirtualDatagramNetwork implements DatagramPort {
  readonly servers = new Map<string, VirtualSntpServer>();

  send(host: string, packet: Uint8Array, onAnswer: (packet: Uint8Array) => void): { close(): void } {
    const answer = this.servers.get(host)?.answer(packet);
    if (answer) onAnswer(answer);
    return { close() {} };
  }
}

/** SNTP over a DatagramPort, checking answers as the Moddable SDK's sntp module does. */
export class PacketSntpClient implements SntpClient {
  readonly #port: DatagramPort;
  readonly #clientNow: () => number;
  readonly #tries: number;
  readonly #retry: (again: () => void) => { cancel(): void };

  /**
   * `clientNow`: the client's own clock for its transmit timestamp; `retry` schedules the next try
   * (5 s apart on the device) and `tries` bounds them (5 on the device).
   */
  constructor(options: {
    port: DatagramPort;
    clientNow: () => number;
    retry: (again: () => void) => { cancel(): void };
    tries?: number;
  }) {
    this.#port = options.port;
    this.#clientNow = options.clientNow;
    this.#retry = options.retry;
    this.#tries = options.tries ?? 5;
  }

  request(host: string, done: TimeDone): void {
    let settled = false;
    let tries = 0;
    let pending: { cancel(): void } | undefined;
    let socket: { close(): void } | undefined;
    const settle = (error: Error | undefined, timeMs?: number) => {
      if (settled) return;
      settled = true;
      pending?.cancel();
      socket?.close();
      if (error) done(error);
      else done(undefined, { timeMs: timeMs as number, resolutionMs: 1000 });
    };
    const onAnswer = (packet: Uint8Array) => {
      if (settled) return;
      if (packet.length !== NTP_PACKET_LENGTH) settle(new Error('unexpected SNTP packet length'));
      else if ((packet[0] & 7) !== MODE_SERVER) settle(new Error('unexpected SNTP packet first byte'));
      else if (packet[1] === 0)
        return; // kiss-o'-death: discarded, the next try may get an answer
      else {
        const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
        settle(undefined, (view.getUint32(40) - NTP_UNIX_OFFSET_S) * 1000);
      }
    };
    const attempt = () => {
      if (settled) return;
      if (tries++ >= this.#tries) {
        settle(new Error(`no response from SNTP server ${host}`));
        return;
      }
      socket?.close();
      socket = this.#port.send(host, ntpRequest(this.#clientNow()), onAnswer);
      if (!settled) pending = this.#retry(attempt);
    };
    attempt();
  }
}
