// A virtual Zigbee mesh for tests and the demo fleet (a simulator: never a production default).
// Nodes sit at positions (metres) with a radio range; a packet takes the shortest chain of powered,
// joined nodes within range of each other (routers relay), each hop lost with the mesh's loss rate.
// Like a Zigbee network with APS acknowledgements, the sender learns whether the packet arrived
// after a few retries; the acknowledgement itself can be lost (`ackLoss`), so the receiver may
// get a packet its sender counts as failed, and get it again on a resend.
import type { Timers } from '../clock';

/** A node as the mesh sees it (a VirtualXBee). */
export interface MeshNode {
  readonly address64: string;
  position: { x: number; y: number };
  /** Radio range, metres. */
  range: number;
  /** Powered and joined: it can send, receive and route. */
  readonly joined: boolean;
  /** A packet for this node arrives (after the air time). */
  deliver(source64: string, source16: number, data: Uint8Array): void;
}

export interface MeshSendResult {
  /** Delivery status as a Transmit Status reports it: 0 delivered, 0x21 no network ACK, 0x25 no route, 0x24 unknown address. */
  status: number;
  retries: number;
}

export interface ZigbeeMeshOptions {
  timers: Timers;
  /** Probability that one hop of one attempt is lost (0..1). */
  loss?: number;
  /** Probability that a delivered packet's acknowledgement is lost on the way back (0..1). */
  ackLoss?: number;
  /** Attempts after the first before the sender gives up. */
  retries?: number;
  /** Air time of one hop, ms. */
  hopMs?: number;
  seed?: number;
}

export class ZigbeeMesh {
  readonly #nodes = new Map<string, MeshNode>();
  readonly #network16 = new Map<string, number>();
  readonly timers: Timers;
  loss: number;
  ackLoss: number;
  readonly retries: number;
  readonly hopMs: number;
  #seed: number;
  /** Counters: packets offered, delivered, lost after every retry, acks lost. */
  readonly stats = { sent: 0, delivered: 0, failed: 0, ackLost: 0, noRoute: 0 };

  constructor(options: ZigbeeMeshOptions) {
    this.timers = options.timers;
    this.loss = options.loss ?? 0;
    this.ackLoss = options.ackLoss ?? 0;
    this.retries = options.retries ?? 2;
    this.hopMs = options.hopMs ?? 10;
    this.#seed = (options.seed ?? 1) >>> 0 || 1;
  }

  add(node: MeshNode): void {
    this.#nodes.set(node.address64, node);
    this.#network16.set(node.address64, this.#network16.size + 1);
  }

  remove(address64: string): void {
    this.#nodes.delete(address64);
  }

  node(address64: string): MeshNode | undefined {
    return this.#nodes.get(address64);
  }

  /** The node's 16-bit network address (assigned in join order). */
  network16(address64: string): number {
    return this.#network16.get(address64) ?? 0xfffe;
  }

  /** Uniform in [0, 1): xorshift32, repeatable from the seed. */
  random(): number {
    let x = this.#seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#seed = x >>> 0;
    return this.#seed / 0x1_0000_0000;
  }

  /** Hops on the shortest route from one node to another, or undefined when none exists. */
  hops(from: string, to: string): number | undefined {
    const start = this.#nodes.get(from);
    const goal = this.#nodes.get(to);
    if (!start || !goal || !start.joined || !goal.joined) return undefined;
    const seen = new Map<string, number>([[from, 0]]);
    const queue = [start];
    while (queue.length) {
      const here = queue.shift()!;
      const depth = seen.get(here.address64)!;
      for (const next of this.#nodes.values()) {
        if (seen.has(next.address64) || !next.joined) continue;
        const dx = next.position.x - here.position.x;
        const dy = next.position.y - here.position.y;
        if (Math.hypot(dx, dy) > Math.min(here.range, next.range)) continue;
        if (next === goal) return depth + 1;
        seen.set(next.address64, depth + 1);
        queue.push(next);
      }
    }
    return undefined;
  }

  /**
   * Offers a packet; decides now whether it arrives (delivery after the air time) and what the
   * sender's Transmit Status will say.
   */
  send(from: string, to: string, data: Uint8Array): MeshSendResult {
    this.stats.sent++;
    if (!this.#nodes.has(to)) return { status: 0x24, retries: 0 };
    const hops = this.hops(from, to);
    if (hops === undefined) {
      this.stats.noRoute++;
      return { status: 0x25, retries: 0 };
    }
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      let arrived = true;
      for (let h = 0; h < hops; h++) if (this.random() < this.loss) arrived = false;
      if (!arrived) continue;
      const copy = data.slice();
      const source16 = this.network16(from);
      this.timers.setTimeout(() => {
        const node = this.#nodes.get(to);
        if (node?.joined) node.deliver(from, source16, copy);
      }, hops * this.hopMs);
      this.stats.delivered++;
      if (this.random() < this.ackLoss) {
        this.stats.ackLost++;
        return { status: 0x21, retries: this.retries };
      }
      return { status: 0x00, retries: attempt };
    }
    this.stats.failed++;
    return { status: 0x21, retries: this.retries };
  }
}
