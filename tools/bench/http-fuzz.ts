// The long run of the HTTP fuzz (the CI slice is host-tests/platform/httpFuzz.test.ts): every route
// fastify has, requests generated from its JSON schemas with fast-check (sim/fleet/httpFuzz.ts), once
// without credentials and once with them. Prints the requests, the routes covered, the status
// histogram and the 5xx count; exits 1 on any failure (a 5xx, an unauthenticated 2xx on a route
// that needs credentials, a refusal outside the error shape, a value only the database refused).
//   npm run bench -- http-fuzz --per-route=200 --seed=1 [--real]
import { describeFailures, fuzzPlatform } from '../../sim/fleet/httpFuzz';
import { embedded, real } from '../../sim/fleet/platform';

export const description =
  'HTTP fuzz of every route from its JSON schemas, anonymous and authenticated: no 5xx, no unauthenticated 2xx';

function option(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  if (!found) return fallback;
  const value = Number(found.slice(name.length + 3));
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

export async function run(args: string[]): Promise<void> {
  const perRoute = option(args, 'per-route', 200);
  const seed = option(args, 'seed', 1);
  const backend = args.includes('--real') ? real : embedded;
  if (backend.real) await backend.check();
  console.log(`${backend.name}, ${perRoute} requests per route and mode, seed ${seed}`);
  // The requests' own time, without the platform's start.
  let fuzzMs = 0;
  const report = await fuzzPlatform(backend, {
    perRoute,
    seed,
    keep: 200,
    onRoute: (_op, ms) => {
      fuzzMs += ms;
    },
  });
  const seconds = fuzzMs / 1000;
  let failures = 0;
  for (const mode of ['anonymous', 'authenticated'] as const) {
    const r = report[mode];
    const covered = report.registered.filter((route) => r.operations.includes(route)).length;
    console.log(
      `${mode}: ${r.requests.toLocaleString('en')} requests, ${covered}/${report.registered.length} routes covered, ${r.serverErrors} 5xx, ${r.failures.length} failures`,
    );
    console.log(`  statuses: ${JSON.stringify(r.statuses)}`);
    if (r.failures.length > 0) console.log(describeFailures(r.failures, 10));
    failures += r.failures.length;
  }
  const total = report.anonymous.requests + report.authenticated.requests;
  console.log(
    `${total.toLocaleString('en')} requests in ${seconds.toFixed(1)} s (${(total / seconds).toFixed(0)}/s)`,
  );
  if (failures > 0) process.exitCode = 1;
}
