// A virtual Zigbee mesh for tests and the demo fleet (a simulator: never a production default).
// Nodes sit at positions (metres) with a radio range; a packet takes the shortest chain of powered,
// joined nodes within range of each other (routers relay), each hop lost with the mesh's loss rate.
// Like a Zigbee network with APS acknowledgements, the sender learns whether the packet arrived
// after a few retries; the acknowledgement itself can be lost (`ackLoss`), so the receiver may
// get a packet its sender counts as failed, and get it again on a resend.
//
// End devices (Digi XBee 3 Zigbee RF Module User Guide 90001539, "Manage End Devices"): they never
// route; a packet for one goes to its parent (the nearest router in its range), which holds it while
// the child sleeps until the child wakes and polls, for at most its buffering time (1.2 × SP, ≤ 30 s).
// With no acknowledgement in that time the sender tries twice more ("Transmission timeouts >
// Extended timeout"), then reports a network ACK failure: the packet is lost.
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
  /** An end device (SM ≠ 0): never routes, reached through its parent. */
  readonly endDevice?: boolean;
  /** An end device in pin sleep: hears nothing until it wakes and polls its parent. */
  readonly asleep?: boolean;
  /** As a parent: how long it holds a packet for a sleeping child, ms. */
  readonly childBufferMs?: number;
}

interface HeldPacket {
  from: string;
  to: string;
  data: Uint8Array;
  attempt: number;
  timer: ReturnType<Timers['setTimeout']>;
  report: (status: number, retries: number) => void;
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
  /** Counters: packets offered, delivered, lost after every retry, acks lost; packets parents held for sleeping children, packets for end devices lost after every attempt. */
  readonly stats = { sent: 0, delivered: 0, failed: 0, ackLost: 0, noRoute: 0, held: 0, heldLost: 0 };
  readonly #held: HeldPacket[] = [];

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
        if (next.endDevice) continue; // end devices do not route
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

  /** The parent of an end device: the nearest joined router within range. */
  parentOf(child: string): MeshNode | undefined {
    const node = this.#nodes.get(child);
    if (!node) return undefined;
    let best: MeshNode | undefined;
    let bestDistance = Number.POSITIVE_INFINITY;
    for (const other of this.#nodes.values()) {
      if (other === node || other.endDevice || !other.joined) continue;
      const d = Math.hypot(other.position.x - node.position.x, other.position.y - node.position.y);
      if (d <= Math.min(node.range, other.range) && d < bestDistance) {
        best = other;
        bestDistance = d;
      }
    }
    return best;
  }

  /**
   * A packet for an end device: delivered now if it is awake, otherwise held by its parent until it
   * polls or the buffering time runs out; three attempts in all. `report` gets the sender's
   * Transmit Status (0 delivered, 0x21 no acknowledgement, 0x25 no route).
   */
  sendToEndDevice(
    from: string,
    to: string,
    data: Uint8Array,
    report: (status: number, retries: number) => void,
  ): void {
    this.stats.sent++;
    this.#attempt({ from, to, data: data.slice(), attempt: 0, timer: undefined as never, report });
  }

  /** A child woke and polls its parent: what the parent holds for it arrives, in order. */
  poll(child: string): void {
    const node = this.#nodes.get(child);
    if (!node || node.asleep) return;
    const mine = this.#held.filter((p) => p.to === child);
    for (const packet of mine) {
      this.#held.splice(this.#held.indexOf(packet), 1);
      this.timers.clear(packet.timer);
      this.#arrive(packet, 1);
    }
  }

  /** Packets parents hold for sleeping children now. */
  get heldForSleepers(): number {
    return this.#held.length;
  }

  #attempt(packet: HeldPacket): void {
    const hops = this.hops(packet.from, packet.to);
    const parent = this.parentOf(packet.to);
    if (hops === undefined || !parent) {
      this.stats.noRoute++;
      this.timers.setTimeout(() => packet.report(0x25, packet.attempt), this.hopMs);
      return;
    }
    // The hops up to the parent (one fewer when the sender is the parent).
    for (let h = 0; h < hops - 1; h++) {
      if (this.random() < this.loss) {
        this.#retry(packet, 2 * hops * this.hopMs);
        return;
      }
    }
    const child = this.#nodes.get(packet.to)!;
    if (!child.asleep) {
      this.timers.setTimeout(() => this.#arrive(packet, hops), (hops - 1) * this.hopMs);
      return;
    }
    this.stats.held++;
    packet.timer = this.timers.setTimeout(() => {
      this.#held.splice(this.#held.indexOf(packet), 1);
      this.#retry(packet, 0);
    }, parent.childBufferMs ?? 30_000);
    this.#held.push(packet);
  }

  /** The last hop, parent to child, and the acknowledgement back to the sender. */
  #arrive(packet: HeldPacket, hops: number): void {
    const child = this.#nodes.get(packet.to);
    if (!child?.joined || child.asleep || this.random() < this.loss) {
      this.#retry(packet, 2 * hops * this.hopMs);
      return;
    }
    this.timers.setTimeout(() => {
      const node = this.#nodes.get(packet.to);
      if (node?.joined && !node.asleep) node.deliver(packet.from, this.network16(packet.from), packet.data);
    }, this.hopMs);
    this.stats.delivered++;
    const lostAck = this.random() < this.ackLoss;
    if (lostAck) this.stats.ackLost++;
    this.timers.setTimeout(
      () => packet.report(lostAck ? 0x21 : 0x00, lostAck ? this.retries : packet.attempt),
      (hops + 1) * this.hopMs,
    );
  }

  #retry(packet: HeldPacket, afterMs: number): void {
    if (packet.attempt >= this.retries) {
      this.stats.failed++;
      this.stats.heldLost++;
      this.timers.setTimeout(() => packet.report(0x21, packet.attempt), afterMs);
      return;
    }
    packet.attempt++;
    this.timers.setTimeout(() => this.#attempt(packet), afterMs);
  }
}
