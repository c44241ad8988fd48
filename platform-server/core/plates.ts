// A vehicle's number plate as ParkLink stores and compares it: letters and digits, upper case,
// without the spaces and dashes people write ("ab12 cde" and "AB12-CDE" are AB12CDE). The phone
// room keeps it on sessions started by the bay code; enforcement looks vehicles up by it.

/** The plate in its stored form, or undefined when it is not 2 to 10 letters and digits. */
export function normalisePlate(raw: string): string | undefined {
  const plate = raw.toUpperCase().replace(/[\s-]/g, '');
  return /^[A-Z0-9]{2,10}$/.test(plate) ? plate : undefined;
}
