/** A command line the tools cannot act on: they print the message and their usage, exit code 2. */
export class UsageError extends Error {
  override readonly name: string = 'UsageError';
}
