// The processes a load run stands up beside itself, as production runs them: platform instances
// (platform-server/main.ts, configured by environment, each its own process), a Mosquitto broker with
// the deployment's password file and ACL, a fresh database on the real PostgreSQL, and what /proc
// says of their CPU and memory.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HeapProbeAnswer } from './heapProbe';
import { ADMIN_DATABASE_URL, adminQuery } from './platform';

/** A CHECKPOINT on the real server (before a measured COPY). */
export const checkpoint = () => adminQuery('CHECKPOINT');

/** A fresh database on the real server; drop() removes it. */
export async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `parklink_bench_${randomBytes(6).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

/** User + system CPU seconds in a /proc/<pid>/stat line (utime and stime, after the command's name). */
function statCpuSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** User + system CPU seconds of a process so far (Linux /proc). */
export function cpuSeconds(pid: number): number {
  return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/**
 * User + system CPU seconds so far of every process running the program `comm` (all of
 * PostgreSQL's backends and helpers, say), by pid: the processes that are gone are not in it, so
 * a phase's figure is the sum over the pids it ends with of their CPU less what they had at its
 * start (cpuSpent).
 */
export function programCpu(comm: string): Map<number, number> {
  const seconds = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== comm) continue;
      seconds.set(Number(entry), statCpuSeconds(stat));
    } catch {
      // The process ended while the list was read.
    }
  }
  return seconds;
}

/** CPU seconds the program's processes spent between two programCpu readings. */
export function cpuSpent(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, seconds] of after) sum += seconds - (before.get(pid) ?? 0);
  return sum;
}

/** Resident memory of a process, bytes (Linux /proc). */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!kb) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb[1]) * 1024;
}

export interface Instance {
  child: ChildProcess;
  /** The HTTP address it listens on. */
  http: string;
}

/**
 * The V8 flags of `npm run platform`, production's start command (package.json), so an instance
 * started here runs as deployed.
 */
export function platformNodeFlags(): string[] {
  const manifest = JSON.parse(
    readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8'),
  );
  const words = String(manifest.scripts?.platform ?? '').split(/\s+/);
  if (words[0] !== 'node' || !words.includes('platform-server/main.ts'))
    throw new Error('package.json has no "platform" script running platform-server/main.ts with node');
  return words.filter((word) => word.startsWith('--max-'));
}

/**
 * One platform instance as production runs it: its own process, platform-server/main.ts, configured by
 * environment. With BENCH_CPU_PROF=<dir> each instance writes its CPU profile there when it stops.
 * `heapProbe` loads sim/fleet/heapProbe.ts into it, for instanceHeap().
 */
export async function startInstance(
  env: Record<string, string>,
  nodeFlags: string[] = [],
  { heapProbe = false }: { heapProbe?: boolean } = {},
): Promise<Instance> {
  const child = fork(fileURLToPath(new URL('../../platform-server/main.ts', import.meta.url)), [], {
    execArgv: [
      '--import',
      './tools/ts-register.js',
      '--no-warnings',
      ...(heapProbe ? ['--expose-gc', '--import', './sim/fleet/heapProbe.ts'] : []),
      ...platformNodeFlags(),
      ...nodeFlags,
      ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []),
    ],
    env: { ...process.env, PARKLINK_PHONE_GATEWAY: '0', ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const http = await new Promise<string>((resolve, reject) => {
    child.once('message', (message) => resolve((message as { http: string }).http));
    child.once('exit', (code) => reject(new Error(`platform instance exited (${code}) before it was ready`)));
  });
  child.removeAllListeners('exit');
  return { child, http };
}

/**
 * The instance's heap after a full collection (it must run the heap probe), and a heap snapshot
 * written to `snapshot` when given.
 */
export async function instanceHeap({ child }: Instance, snapshot?: string): Promise<HeapProbeAnswer> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown) => {
      if ((message as { probe?: string })?.probe !== 'heap') return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(message as HeapProbeAnswer);
    };
    const onExit = () => reject(new Error('platform instance exited before it answered the heap probe'));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send({ probe: 'heap', snapshot });
  });
}

export async function stopInstance({ child }: Instance): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** A TCP port free on loopback now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A line of the shipped deploy/mosquitto/mosquitto.conf, so the runs measure what is deployed. */
function deployedSetting(name: string): string {
  const conf = readFileSync(
    fileURLToPath(new URL('../../deploy/mosquitto/mosquitto.conf', import.meta.url)),
    'utf8',
  );
  const line = conf.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`deploy/mosquitto/mosquitto.conf has no ${name}`);
  return line;
}

/** Whether something listens on a loopback port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.connect(port, '127.0.0.1');
  });
}

export interface Broker {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Mosquitto on a loopback port of its own, as deploy/mosquitto/ configures it (its queue limit too): no anonymous clients,
 * `passwordFile` (from `npx parklink broker passwd`, or mosquittoPasswordFile) and the deployment's
 * ACL (deploy/mosquitto/acl), without persistence and without TLS (loopback).
 */
export async function startMosquitto(passwordFile: string): Promise<Broker> {
  const dir = mkdtempSync(path.join(tmpdir(), 'parklink-mosquitto-'));
  const port = await freePort();
  writeFileSync(path.join(dir, 'passwd'), passwordFile, { mode: 0o600 });
  const acl = readFileSync(fileURLToPath(new URL('../../deploy/mosquitto/acl', import.meta.url)), 'utf8');
  writeFileSync(path.join(dir, 'acl'), acl, { mode: 0o600 });
  writeFileSync(
    path.join(dir, 'mosquitto.conf'),
    [
      'per_listener_settings false',
      'allow_anonymous false',
      `password_file ${path.join(dir, 'passwd')}`,
      `acl_file ${path.join(dir, 'acl')}`,
      'persistence false',
      deployedSetting('max_queued_messages'),
      deployedSetting('set_tcp_nodelay'),
      'max_connections -1',
      // Started as root, Mosquitto drops to its own user, which cannot read this private folder.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      `listener ${port} 127.0.0.1`,
      '',
    ].join('\n'),
  );
  const child = spawn('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let errors = '';
  child.stderr?.on('data', (chunk) => {
    errors += chunk;
  });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${errors.trim()}`)));
  });
  // Ready once its port answers.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const open = await Promise.race([portOpen(port), failed]);
    if (open) break;
    if (Date.now() > deadline) throw new Error('mosquitto did not open its port in 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  failed.catch(() => {});
  return {
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid as number,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
