// Child-process side of sim/xs/xsnap.ts: owns one @agoric/xsnap worker and relays over IPC.
//
// Why a child process: @agoric/xsnap needs `@endo/init`, whose lockdown() freezes the intrinsics of
// the whole process. Inside mocha that breaks sinon's fake timers ("Cannot assign to read only
// property 'now'") and blanks Error stacks for every other test in the run. Here it only hardens
// this small relay.
import '@endo/init'; // first, as @agoric/xsnap requires (it uses the `harden` and `assert` globals)
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import os from 'node:os';

/** What the driver has the worker print after each evaluate (followed by the evaluate's id). */
export const SYNC_LINE = '\u0001parklink-xs-sync ';

/** Parent → driver. */
export type ToDriver =
  | { type: 'evaluate'; id: number; code: string }
  | { type: 'reply'; id: number; bytes: Uint8Array }
  | { type: 'close' };

/** Driver → parent. */
export type FromDriver =
  | { type: 'ready' }
  | {
      type: 'evaluated';
      id: number;
      synced: boolean;
      meterUsage: { compute: number; allocate: number; currentHeapCount: number };
    }
  | { type: 'failed'; id: number; synced: boolean; message: string }
  | { type: 'command'; id: number; bytes: Uint8Array }
  | { type: 'closed' };

interface XsnapWorker {
  evaluate(code: string): Promise<{ reply: Uint8Array; meterUsage: Record<string, number | null> }>;
  close(): Promise<void>;
}
interface XsnapModule {
  xsnap(options: Record<string, unknown>): Promise<XsnapWorker>;
}
interface TmpModule {
  tmpName: (...args: unknown[]) => void;
}

// Neither package ships type declarations: import through a string so tsc does not look for them.
const xsnapSpecifier: string = '@agoric/xsnap';
const tmpSpecifier: string = 'tmp';

function post(message: FromDriver): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const { xsnap } = (await import(xsnapSpecifier)) as XsnapModule;
  const tmp = (await import(tmpSpecifier)) as TmpModule & { default?: TmpModule };
  const tmpName = tmp.tmpName ?? tmp.default?.tmpName;

  let nextCommand = 1;
  const replies = new Map<number, (bytes: Uint8Array) => void>();

  const worker = await xsnap({
    name: process.env.PARKLINK_XS_NAME || 'parklink-xs',
    os: os.type(),
    spawn,
    fs: { ...fsPromises, createReadStream, tmpName },
    meteringLimit: Number(process.env.PARKLINK_XS_METERING_LIMIT || 0),
    // The worker's `print` writes here, which is the pipe the parent reads.
    stdout: 'inherit',
    stderr: 'inherit',
    handleCommand: (bytes: Uint8Array) =>
      new Promise<Uint8Array>((resolve) => {
        const id = nextCommand++;
        replies.set(id, resolve);
        post({ type: 'command', id, bytes: bytes.slice() });
      }),
  });

  process.on('message', (message: ToDriver) => {
    if (message.type === 'reply') {
      const resolve = replies.get(message.id);
      replies.delete(message.id);
      resolve?.(message.bytes);
    } else if (message.type === 'evaluate') {
      const { id } = message;
      // After the script, print a sync line: the parent answers only once it has read it, so all the
      // script's `print` output (a separate pipe from this IPC channel) is in `output` by then.
      const sync = (): Promise<boolean> =>
        worker.evaluate(`print(${JSON.stringify(`${SYNC_LINE}${id}`)})`).then(
          () => true,
          () => false,
        );
      worker.evaluate(message.code).then(
        async ({ meterUsage }) =>
          post({
            type: 'evaluated',
            id,
            synced: await sync(),
            meterUsage: {
              compute: Number(meterUsage.compute),
              allocate: Number(meterUsage.allocate),
              currentHeapCount: Number(meterUsage.currentHeapCount),
            },
          }),
        async (error: unknown) => {
          const synced = await sync();
          post({
            type: 'failed',
            id,
            synced,
            message: error instanceof Error ? error.message : String(error),
          });
        },
      );
    } else if (message.type === 'close') {
      worker.close().then(
        () => {
          post({ type: 'closed' });
          process.disconnect?.();
        },
        () => {
          post({ type: 'closed' });
          process.disconnect?.();
        },
      );
    }
  });
  process.on('disconnect', () => {
    // The parent went away without close(): do not leave the XS worker behind.
    worker.close().catch(() => {});
  });
  post({ type: 'ready' });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `xsnap driver: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
