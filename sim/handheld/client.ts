// A maintenance handheld in Node, standing in for the browser's Web Bluetooth: connects to a
// meter's virtual BLE link (or its Wi-Fi port), asks for a larger MTU, speaks the handheld
// service's chunked messages (protocol/handheld.ts, docs/handheld.md), authenticates with a
// maintenance token and its secret, collects the meter's upload sets and its other sealed uplinks
// (status, security events and key-rotation acks, tariff acks) and carries downlinks and release
// tokens back. Between visits it keeps what it holds (store and forward) and hands the
// frames to the platform's POST /api/handheld/uplinks; before a visit it fetches the downlinks
// waiting for the meter (GET /api/handheld/meters/:id/downlinks) to carry in. For the tests and the
// demo.
import type { VirtualBleLink } from '../../hal/mock/ble';
import type { Crypto } from '../../hal/crypto';
import { fromHex, toHex } from '../../protocol/bytes';
import { decodeCbor, encodeCbor } from '../../protocol/cbor';
import { ATT_OVERHEAD, ChunkAssembler, chunkMessage } from '../../protocol/handheld';
import { maintenanceProof } from '../../protocol/keys';

export type Message = Record<string, unknown>;

export class HandheldRefused extends Error {
  override readonly name: string = 'HandheldRefused';
  constructor(
    readonly step: string,
    readonly why: string,
  ) {
    super(`${step} refused: ${why}`);
  }
}

/**
 * A frame collected from a meter, sealed as the meter would have sent it by radio: a record set
 * (`first`..`last`), or another uplink (`kind: 'uplink'`, first and last 0) — status, security
 * event, key-rotation ack, tariff ack, or a tamper alert the meter pushed.
 */
export interface CollectedSet {
  meterId: number;
  first: number;
  last: number;
  frame: Uint8Array;
  kind?: 'set' | 'uplink';
}

export interface VisitOptions {
  token: Uint8Array;
  secret: Uint8Array;
  meterId: number;
  /** Sets to collect at most on this visit (default: all the meter has). */
  maxSets?: number;
}

export interface VisitReport {
  collected: number;
  /** Other uplinks collected (status, security, tariff acks). */
  frames: number;
  delivered: number;
  /** The meter's answer to each downlink carried in, in order (a repeat: ok false, why 'replay'). */
  downlinkReplies: { seq: number; ok: boolean; type?: number; why?: string }[];
  /** The meter's acknowledged point after the downlinks were delivered. */
  acked: number;
  /** The visit ended early (the link dropped). */
  dropped: boolean;
}

/** One connection to a meter's link: chunked messages in both directions. */
export class HandheldConnection {
  readonly #link: VirtualBleLink;
  readonly #assembler = new ChunkAssembler();
  readonly #inbox: Message[] = [];
  #mtu: number;
  /** Chunks written and notifications received on this connection. */
  chunksOut = 0;
  chunksIn = 0;
  /** Largest chunk either side sent. */
  largestChunk = 0;

  constructor(link: VirtualBleLink, mtu = 185) {
    this.#link = link;
    if (!link.connect()) throw new HandheldRefused('connect', 'the meter is not advertising');
    link.onNotify = (chunk) => {
      this.chunksIn++;
      this.largestChunk = Math.max(this.largestChunk, chunk.length);
      const message = this.#assembler.push(chunk);
      if (!message) return;
      const decoded = decodeCbor(message);
      // The meter hands a tamper alert over as the sealed frame itself.
      this.#inbox.push(
        decoded && typeof decoded === 'object' && !Array.isArray(decoded) && !(decoded instanceof Uint8Array)
          ? (decoded as Message)
          : { t: 'frame', frame: message },
      );
    };
    this.#mtu = link.exchangeMtu(mtu);
  }

  get mtu(): number {
    return this.#mtu;
  }

  get connected(): boolean {
    return this.#link.connected;
  }

  /** Sends one message; returns the meter's reply (the link is synchronous). */
  request(message: Message): Message {
    this.send(encodeCbor(message));
    const reply = this.#inbox.shift();
    if (!reply) throw new HandheldRefused(String(message.t), this.connected ? 'no reply' : 'link dropped');
    return reply;
  }

  /** Writes raw message bytes in chunks that fit the MTU. */
  send(bytes: Uint8Array): void {
    for (const chunk of chunkMessage(bytes, this.#mtu - ATT_OVERHEAD)) {
      if (!this.#link.connected) return;
      this.chunksOut++;
      this.largestChunk = Math.max(this.largestChunk, chunk.length);
      this.#link.write(chunk);
    }
  }

  /** Writes one raw chunk (tests of bad input). */
  writeChunk(chunk: Uint8Array): Message | undefined {
    this.#link.write(chunk);
    return this.#inbox.shift();
  }

  /** Hello, challenge, proof: throws HandheldRefused when the meter refuses. */
  authenticate(crypto: Crypto, token: Uint8Array, secret: Uint8Array, meterId: number): void {
    const challenge = this.request({ t: 'hello', token });
    if (challenge.t !== 'challenge' || !(challenge.c instanceof Uint8Array))
      throw new HandheldRefused('hello', String(challenge.why ?? challenge.t));
    const ok = this.request({ t: 'proof', p: maintenanceProof(crypto, secret, challenge.c, meterId) });
    if (ok.t !== 'ok') throw new HandheldRefused('proof', String(ok.why ?? ok.t));
  }

  disconnect(): void {
    this.#link.disconnect();
    this.#link.onNotify = undefined;
  }
}

/** The handheld between visits: what it collected, and the downlinks waiting for each meter. */
export class Handheld {
  readonly #crypto: Crypto;
  /** Frames collected and not yet handed to the platform (sets until it acknowledged them), in order. */
  readonly uplinks: CollectedSet[] = [];

  /** The record sets among them. */
  get sets(): CollectedSet[] {
    return this.uplinks.filter((u) => u.kind !== 'uplink');
  }
  /** Sealed downlinks (acks) and release tokens waiting for the next visit, by meter. */
  readonly downlinks = new Map<number, Uint8Array[]>();
  readonly releases = new Map<number, Uint8Array[]>();
  readonly mtu: number;

  constructor(crypto: Crypto, options: { mtu?: number } = {}) {
    this.#crypto = crypto;
    this.mtu = options.mtu ?? 185;
  }

  /** The last record this handheld holds of a meter (0: none). */
  heldUpTo(meterId: number): number {
    let last = 0;
    for (const set of this.uplinks)
      if (set.meterId === meterId && set.kind !== 'uplink') last = Math.max(last, set.last);
    return last;
  }

  /**
   * One visit: connect, authenticate, deliver what waits for this meter (acks first, then release
   * tokens), then collect sets after what the handheld already holds. A link that drops ends the
   * visit; what was collected and delivered so far stays.
   */
  visit(link: VirtualBleLink, options: VisitOptions): VisitReport {
    const report: VisitReport = {
      collected: 0,
      frames: 0,
      delivered: 0,
      downlinkReplies: [],
      acked: 0,
      dropped: false,
    };
    const connection = new HandheldConnection(link, this.mtu);
    try {
      connection.authenticate(this.#crypto, options.token, options.secret, options.meterId);
      const waiting = this.downlinks.get(options.meterId) ?? [];
      while (waiting.length > 0) {
        const reply = connection.request({ t: 'down', frame: waiting[0] });
        const seq = frameSeqOf(waiting[0]);
        waiting.shift(); // delivered (a refused one, e.g. a replay, would be refused again)
        report.delivered++;
        report.downlinkReplies.push({
          seq,
          ok: reply.ok === true,
          ...(typeof reply.type === 'number' ? { type: reply.type } : {}),
          ...(typeof reply.why === 'string' ? { why: reply.why } : {}),
        });
        report.acked = Number(reply.acked ?? report.acked);
      }
      const releases = this.releases.get(options.meterId) ?? [];
      while (releases.length > 0) {
        const reply = connection.request({ t: 'release', token: releases[0] });
        releases.shift();
        report.acked = Number(reply.acked ?? report.acked);
        if (reply.ok !== true) throw new HandheldRefused('release', String(reply.why));
      }
      // The meter's other uplinks (the acks of what was just carried in among them), oldest first:
      // once this handheld holds them, the meter lets them go.
      let lastId = 0;
      for (;;) {
        const reply = connection.request({ t: 'uplink', after: lastId });
        if (reply.t !== 'uplink' || !(reply.frame instanceof Uint8Array)) break;
        this.uplinks.push({
          meterId: options.meterId,
          first: 0,
          last: 0,
          frame: reply.frame,
          kind: 'uplink',
        });
        lastId = Number(reply.id);
        report.frames++;
      }
      if (lastId > 0) connection.request({ t: 'held', upTo: lastId });
      // Sets the meter has since acknowledged (by any path) need not travel: forget them.
      const none = connection.request({ t: 'next', after: Number.MAX_SAFE_INTEGER - 1 });
      const acked = Number(none.acked ?? 0);
      report.acked = acked;
      this.#forget(options.meterId, acked);
      const max = options.maxSets ?? Number.POSITIVE_INFINITY;
      while (report.collected < max) {
        const after = Math.max(this.heldUpTo(options.meterId), acked);
        const reply = connection.request({ t: 'next', after });
        if (reply.t === 'none') break;
        if (reply.t !== 'set' || !(reply.frame instanceof Uint8Array))
          throw new HandheldRefused('next', String(reply.why ?? reply.t));
        this.uplinks.push({
          meterId: options.meterId,
          first: Number(reply.first),
          last: Number(reply.last),
          frame: reply.frame,
          kind: 'set',
        });
        report.collected++;
      }
    } catch (error) {
      if (!(error instanceof HandheldRefused) || connection.connected) throw error;
      report.dropped = true;
    } finally {
      connection.disconnect();
    }
    return report;
  }

  /**
   * Takes the downlinks the platform keeps for a meter (its outbox) to carry on the next visit,
   * beside the acks already waiting: each frame once, in downlink sequence order (the order the
   * platform sealed them in, which the meter's replay window is made for). Returns how many are new.
   */
  async fetchDownlinks(meterId: number, fetchFrames: DownlinkFetch): Promise<number> {
    const frames = await fetchFrames(meterId);
    const list = this.downlinks.get(meterId) ?? [];
    const held = new Set(list.map((f) => toHex(f)));
    let added = 0;
    for (const frame of frames) {
      if (held.has(toHex(frame))) continue;
      held.add(toHex(frame));
      list.push(frame);
      added++;
    }
    list.sort((a, b) => frameSeqOf(a) - frameSeqOf(b));
    this.downlinks.set(meterId, list);
    return added;
  }

  /**
   * A whole errand at a meter with no link of its own: fetch what the platform keeps for it, visit
   * (carry it in, collect the meter's answers and sets), hand everything collected to the platform.
   */
  async serve(
    link: VirtualBleLink,
    options: VisitOptions,
    platform: { fetch: DownlinkFetch; post: (frames: string[]) => Promise<UploadResult[]> },
  ): Promise<{ visit: VisitReport; upload: UploadSummary }> {
    await this.fetchDownlinks(options.meterId, platform.fetch);
    const visit = this.visit(link, options);
    const upload = await this.upload(platform.post);
    return { visit, upload };
  }

  /**
   * Hands every frame held to the platform; the acks it returns wait for the next visit. A frame
   * the platform refused as a replay or out of its window is dropped here: the meter still holds
   * its records and seals them afresh at the next collection.
   */
  async upload(post: (frames: string[]) => Promise<UploadResult[]>): Promise<UploadSummary> {
    const summary: UploadSummary = { frames: 0, accepted: 0, stored: 0, duplicates: 0, refused: [] };
    if (this.uplinks.length === 0) return summary;
    const sending = this.uplinks.splice(0);
    const results = await post(sending.map((s) => toHex(s.frame)));
    results.forEach((r, i) => {
      summary.frames++;
      if (r.ok) {
        summary.accepted++;
        summary.stored += r.stored ?? 0;
        summary.duplicates += r.duplicates ?? 0;
        if (r.downlink) {
          const meterId = sending[i].meterId;
          const list = this.downlinks.get(meterId) ?? [];
          list.push(fromHex(r.downlink));
          this.downlinks.set(meterId, list);
        }
      } else summary.refused.push(r.reason ?? 'unknown');
    });
    return summary;
  }

  #forget(meterId: number, acked: number): void {
    for (let i = this.uplinks.length - 1; i >= 0; i--) {
      const set = this.uplinks[i];
      if (set.meterId === meterId && set.kind !== 'uplink' && set.last <= acked) this.uplinks.splice(i, 1);
    }
  }
}

/** The downlink frame sequence number in a sealed frame's header (bytes 10–13, big-endian). */
function frameSeqOf(frame: Uint8Array): number {
  return frame.length >= 14
    ? ((frame[10] << 24) | (frame[11] << 16) | (frame[12] << 8) | frame[13]) >>> 0
    : 0;
}

/** Fetches the sealed downlinks the platform keeps for a meter, in sequence order. */
export type DownlinkFetch = (meterId: number) => Promise<Uint8Array[]>;

/** The platform's answer to GET /api/handheld/meters/:id/downlinks. */
export interface MeterDownlinks {
  meterId: number;
  downlinks: { seq: number; type: number; epoch: number; frame: string }[];
}

/** The frames of an answer of GET /api/handheld/meters/:id/downlinks, decoded from base64. */
export function framesOf(answer: MeterDownlinks): Uint8Array[] {
  return answer.downlinks.map((d) => new Uint8Array(Buffer.from(d.frame, 'base64')));
}

/**
 * The handheld's fetch of a meter's downlinks over HTTP: GET /api/handheld/meters/:id/downlinks
 * at `baseUrl` with an operator's bearer token.
 */
export function downlinksOverHttp(baseUrl: string, bearer: string): DownlinkFetch {
  return async (meterId) => {
    const response = await fetch(new URL(`/api/handheld/meters/${meterId}/downlinks`, baseUrl), {
      headers: { authorization: `Bearer ${bearer}` },
    });
    if (!response.ok) throw new Error(`downlinks refused: HTTP ${response.status} ${await response.text()}`);
    return framesOf((await response.json()) as MeterDownlinks);
  };
}

/**
 * The handheld's upload over HTTP: POST /api/handheld/uplinks at `baseUrl` with an operator's
 * bearer token (from POST /api/operators/login).
 */
export function uploadOverHttp(
  baseUrl: string,
  bearer: string,
): (frames: string[]) => Promise<UploadResult[]> {
  return async (frames) => {
    const response = await fetch(new URL('/api/handheld/uplinks', baseUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
      body: JSON.stringify({ frames }),
    });
    if (!response.ok) throw new Error(`upload refused: HTTP ${response.status} ${await response.text()}`);
    return ((await response.json()) as { results: UploadResult[] }).results;
  };
}

export interface UploadResult {
  ok: boolean;
  stored?: number;
  duplicates?: number;
  downlink?: string;
  reason?: string;
}

export interface UploadSummary {
  frames: number;
  accepted: number;
  stored: number;
  duplicates: number;
  refused: string[];
}
