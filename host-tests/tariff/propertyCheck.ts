// Running a tariff property with fast-check, shared by the property test files: each property's
// count of cases (and of cases that had a sale to check) is kept for printing after the suite.
import assert from 'node:assert/strict';
import fc from 'fast-check';

export class PropertyRuns {
  readonly #ran: Record<string, string> = {};
  readonly #runs: number;

  /** `runs` cases per property; PARKLINK_PROPERTY_RUNS sets another number for a longer search. */
  constructor(runs: number) {
    this.#runs = Number(process.env.PARKLINK_PROPERTY_RUNS ?? runs);
  }

  /**
   * Runs a property; the predicate returns false when its case had nothing to check (a refusal).
   * `examples` (counterexamples found before) run first, every time.
   */
  check<T>(
    name: string,
    arb: fc.Arbitrary<T>,
    predicate: (value: T) => boolean | undefined,
    examples: NoInfer<T>[] = [],
  ): void {
    let count = 0;
    let checked = 0;
    fc.assert(
      fc.property(arb, (value) => {
        count++;
        if (predicate(value) !== false) checked++;
      }),
      { numRuns: this.#runs, examples: examples.map((value) => [value]) },
    );
    this.#ran[name] = `${count} cases, ${checked} with a sale to check`;
    assert.ok(checked > count / 5, `${name}: only ${checked} of ${count} cases were sales`);
  }

  print(): void {
    for (const [name, count] of Object.entries(this.#ran)) console.log(`      ${name}: ${count}`);
  }
}
