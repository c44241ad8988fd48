// JSON-schema pieces the rooms' routes share.

export const U32_MAX = 0xffffffff;

export const u32 = { type: 'integer', minimum: 0, maximum: U32_MAX } as const;

/** `:id` of a meter. */
export const meterIdParams = {
  type: 'object',
  properties: { id: u32 },
  required: ['id'],
} as const;

/** A date-time string (ISO 8601, UTC) or null. */
export const nullableTime = { type: 'string', format: 'date-time', nullable: true } as const;

export const time = { type: 'string', format: 'date-time' } as const;

/** An object whose listed properties are documented; the route may send more. */
export function object(
  properties: Record<string, unknown>,
  required: readonly string[] = Object.keys(properties),
): { type: 'object'; properties: Record<string, unknown>; required: string[]; additionalProperties: true } {
  return { type: 'object', properties, required: [...required], additionalProperties: true };
}
