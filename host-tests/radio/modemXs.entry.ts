// Bundled by modemXs.test.ts and run under XS: the A7670 driver parses the recorded AT session.
// Loading the bundle and replaying the session are separate evaluates, so each has its own figure.
import { run, send } from '../../sim/xs/guest';
import { replaySession } from './session';

(globalThis as unknown as { modemSession: unknown }).modemSession = {
  replay: () => run(() => send({ session: replaySession() })),
};
