// The shapes every validator of parsed JSON here asks about (daemon frames, samples, vm.json).

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A non-negative safe integer. */
export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A finite number ≥ 0: times, durations, percentages. */
export function isAmount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/** A string of 1 to `max` characters. */
export function isText(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= max;
}

/** Absent, or a string of 1 to `max` characters. */
export function isOptionalText(value: unknown, max: number): value is string | undefined {
  return value === undefined || isText(value, max);
}
