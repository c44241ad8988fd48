// Operator accounts as a root plugin (fastify-plugin: its route check and audit hooks must see every
// other room's routes): install it before any other room.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Database } from '../core/db';
import { Operators, type OperatorsConfig } from './service';

export { type OperatorGuard, Operators, type OperatorsConfig, type Role, roleAtLeast } from './service';

export const operatorsPlugin = fp<{ operators: Operators }>(
  async (app, { operators }) => operators.install(app),
  {
    name: 'parklink-operators',
  },
);

/** Installs the guard and the operator routes on `app`, then creates the configured first admin. */
export async function startOperators(
  app: FastifyInstance,
  db: Database,
  config?: OperatorsConfig,
): Promise<Operators> {
  const operators = new Operators(db, config);
  await app.register(operatorsPlugin, { operators });
  await operators.bootstrap();
  return operators;
}
