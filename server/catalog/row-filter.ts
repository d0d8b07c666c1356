// Listing queries that filter on whichever fields a caller set: the WHERE clause and its
// values built in one place, and the row limit bounded the same way for every listing.

export type FilterValue = string | number;

/** The most rows one listing returns, whatever the caller asks. */
export const MAX_LISTED_ROWS = 10000;

/**
 * `WHERE a AND b` over the conditions whose value is set (not undefined), with their
 * values in the same order; an empty string when none is.
 */
export function whereClause(conditions: [condition: string, value: FilterValue | undefined][]): {
  where: string;
  values: FilterValue[];
} {
  const set = conditions.filter((entry): entry is [string, FilterValue] => entry[1] !== undefined);
  return {
    where: set.length ? `WHERE ${set.map(([condition]) => condition).join(' AND ')}` : '',
    values: set.map(([, value]) => value),
  };
}

/** A caller's row limit, at least 1 and at most MAX_LISTED_ROWS. */
export function rowLimit(asked: number | undefined, fallback: number): number {
  return Math.max(1, Math.min(asked ?? fallback, MAX_LISTED_ROWS));
}
