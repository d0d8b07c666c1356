// Counts in human output (CLI lines, notifications): "1 file", "2 files", "0 directories".
// One place decides the form, so no message says "1 files" or hedges with "file(s)".

/** `count` and the noun in the form that count takes; irregular plurals are given. */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}
