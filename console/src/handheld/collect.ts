// The officer app's handheld: Web Bluetooth to a meter's handheld service (docs/handheld.md), the
// chunked CBOR messages of protocol/handheld.ts, the maintenance token's challenge answered with
// the meter's own proof (protocol/keys.ts), then one visit: the downlinks the platform keeps for
// the meter carried in, the meter's other uplinks and its upload sets collected. Built into
// build/enforcement/collect.js (tools/buildConsole.ts) and imported by the officer app, which keeps
// what it collected in IndexedDB and hands it to POST /api/handheld/uplinks when online.
import { nobleCrypto } from '../../../hal/nobleCrypto';
import { fromHex, toHex } from '../../../protocol/bytes';
import { encodeCbor, decodeCbor } from '../../../protocol/cbor';
import { ATT_OVERHEAD, ChunkAssembler, chunkMessage } from '../../../protocol/handheld';
import { maintenanceProof } from '../../../protocol/keys';

/** The handheld service's UUIDs, lower case as Web Bluetooth takes them (hal/ble.ts). */
export const SERVICE = '5041524b-0001-4c49-4e4b-48414e44484c';
const CONTROL = '5041524b-0002-4c49-4e4b-48414e44484c';
const DATA = '5041524b-0003-4c49-4e4b-48414e44484c';
/**
 * Web Bluetooth does not tell the page the MTU the browser agreed, so writes fit the default
 * ATT MTU of 23 (20-byte values); the meter's notifications come in whatever size it agreed.
 */
const DEFAULT_MTU = 23;

type Message = Record<string, unknown>;

/** The part of Web Bluetooth this uses (navigator.bluetooth; not in TypeScript's DOM types). */
interface Characteristic extends EventTarget {
  value?: DataView;
  startNotifications(): Promise<unknown>;
  writeValueWithResponse(value: Uint8Array): Promise<void>;
}
interface Bluetooth {
  requestDevice(options: { filters: { services: string[] }[] }): Promise<{
    name?: string;
    gatt?: {
      connect(): Promise<{
        getPrimaryService(
          uuid: string,
        ): Promise<{ getCharacteristic(uuid: string): Promise<Characteristic> }>;
      }>;
      disconnect(): void;
    };
  }>;
}

export class HandheldError extends Error {
  override readonly name = 'HandheldError';
  constructor(
    readonly step: string,
    readonly why: string,
  ) {
    super(`${step}: ${why}`);
  }
}

/** One connection to a meter's handheld service: requests and their replies, one at a time. */
export class MeterLink {
  readonly #assembler = new ChunkAssembler();
  readonly #replies: Message[] = [];
  #waiting: ((m: Message) => void) | undefined;

  private constructor(
    readonly name: string,
    private readonly control: Characteristic,
    private readonly close: () => void,
  ) {}

  /** Asks the browser for a meter nearby offering the handheld service, and connects. */
  static async connect(
    bluetooth: Bluetooth | undefined = (navigator as { bluetooth?: Bluetooth }).bluetooth,
  ) {
    if (!bluetooth) throw new HandheldError('bluetooth', 'this browser has no Web Bluetooth');
    const device = await bluetooth.requestDevice({ filters: [{ services: [SERVICE] }] });
    if (!device.gatt) throw new HandheldError('bluetooth', 'the meter offers no GATT server');
    const server = await device.gatt.connect();
    const service = await server.getPrimaryService(SERVICE);
    const control = await service.getCharacteristic(CONTROL);
    const data = await service.getCharacteristic(DATA);
    const link = new MeterLink(device.name ?? 'meter', control, () => device.gatt?.disconnect());
    data.addEventListener('characteristicvaluechanged', (event) => {
      const value = (event.target as Characteristic).value;
      if (value) link.#chunk(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    });
    await data.startNotifications();
    return link;
  }

  #chunk(chunk: Uint8Array): void {
    const message = this.#assembler.push(chunk);
    if (!message) return;
    const decoded = decodeCbor(message);
    // A tamper alert comes as the sealed frame itself, not a CBOR map.
    const reply =
      decoded && typeof decoded === 'object' && !Array.isArray(decoded) && !(decoded instanceof Uint8Array)
        ? (decoded as Message)
        : { t: 'frame', frame: message };
    if (this.#waiting && reply.t !== 'frame') {
      const resolve = this.#waiting;
      this.#waiting = undefined;
      resolve(reply);
    } else this.#replies.push(reply);
  }

  async request(message: Message, timeoutMs = 10_000): Promise<Message> {
    const reply = new Promise<Message>((resolve, reject) => {
      const queued = this.#replies.findIndex((r) => r.t !== 'frame');
      if (queued >= 0) return resolve(this.#replies.splice(queued, 1)[0]);
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        reject(new HandheldError(String(message.t), 'the meter did not answer'));
      }, timeoutMs);
      this.#waiting = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
    });
    for (const chunk of chunkMessage(encodeCbor(message), DEFAULT_MTU - ATT_OVERHEAD))
      await this.control.writeValueWithResponse(chunk);
    return reply;
  }

  disconnect(): void {
    this.close();
  }
}

export interface Collected {
  meterId: number;
  kind: 'set' | 'uplink';
  first: number;
  last: number;
  /** The sealed frame, hex, as POST /api/handheld/uplinks takes it. */
  frame: string;
}

export interface VisitResult {
  collected: Collected[];
  /** The meter's answer to each downlink carried in. */
  delivered: { ok: boolean; why?: string }[];
  /** The meter's acknowledged point after the visit's downlinks. */
  acked: number;
}

// The officer app reads the hex it keeps with the same helper.
export { fromHex };

/**
 * One visit: prove the token, carry in the downlinks (in the order given), take the meter's other
 * uplinks (then tell it they are held), and collect every upload set after `heldUpTo`.
 */
export async function visit(
  link: MeterLink,
  v: { meterId: number; token: Uint8Array; secret: Uint8Array; downlinks: Uint8Array[]; heldUpTo: number },
): Promise<VisitResult> {
  const challenge = await link.request({ t: 'hello', token: v.token });
  if (challenge.t !== 'challenge' || !(challenge.c instanceof Uint8Array))
    throw new HandheldError('hello', String(challenge.why ?? challenge.t));
  const proven = await link.request({
    t: 'proof',
    p: maintenanceProof(nobleCrypto, v.secret, challenge.c, v.meterId),
  });
  if (proven.t !== 'ok') throw new HandheldError('proof', String(proven.why ?? proven.t));

  const result: VisitResult = { collected: [], delivered: [], acked: 0 };
  for (const frame of v.downlinks) {
    const reply = await link.request({ t: 'down', frame });
    result.delivered.push({
      ok: reply.ok === true,
      ...(typeof reply.why === 'string' ? { why: reply.why } : {}),
    });
    result.acked = Number(reply.acked ?? result.acked);
  }
  let lastId = 0;
  for (;;) {
    const reply = await link.request({ t: 'uplink', after: lastId });
    if (reply.t !== 'uplink' || !(reply.frame instanceof Uint8Array)) break;
    result.collected.push({
      meterId: v.meterId,
      kind: 'uplink',
      first: 0,
      last: 0,
      frame: toHex(reply.frame),
    });
    lastId = Number(reply.id);
  }
  if (lastId > 0) await link.request({ t: 'held', upTo: lastId });
  let after = v.heldUpTo;
  for (;;) {
    const reply = await link.request({ t: 'next', after });
    result.acked = Number(reply.acked ?? result.acked);
    if (reply.t === 'none') break;
    if (reply.t !== 'set' || !(reply.frame instanceof Uint8Array))
      throw new HandheldError('next', String(reply.why ?? reply.t));
    const first = Number(reply.first);
    const last = Number(reply.last);
    result.collected.push({ meterId: v.meterId, kind: 'set', first, last, frame: toHex(reply.frame) });
    after = last;
  }
  return result;
}
