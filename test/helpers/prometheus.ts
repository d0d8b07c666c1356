// A strict reader of the Prometheus text exposition format (version 0.0.4), so tests
// check what a scraper would accept, not just grep for a line. It throws on anything
// Prometheus would reject: bad names, labels or values, samples of undeclared families,
// histograms whose buckets are not cumulative or do not end in +Inf.
import { execa } from 'execa';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SUFFIXES: Record<MetricType, string[]> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

function parseValue(text: string, line: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text))
    throw new Error(`bad value ${JSON.stringify(text)} in: ${line}`);
  return Number(text);
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const pattern = /\s*([^=\s]+)="((?:[^"\\\n]|\\["\\n])*)"\s*(,|$)/y;
  let position = 0;
  while (position < text.length) {
    pattern.lastIndex = position;
    const match = pattern.exec(text);
    if (!match) throw new Error(`bad labels {${text}} in: ${line}`);
    const [, name, value] = match;
    if (!LABEL_NAME.test(name!) || name!.startsWith('__')) throw new Error(`bad label name ${name} in: ${line}`);
    if (name! in labels) throw new Error(`label ${name} twice in: ${line}`);
    labels[name!] = value!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    position = pattern.lastIndex;
  }
  return labels;
}

function parseSample(line: string): Sample {
  const match = /^([^\s{]+)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
  if (!match) throw new Error(`not a sample line: ${line}`);
  if (!NAME.test(match[1]!)) throw new Error(`bad metric name ${match[1]}`);
  return { name: match[1]!, labels: parseLabels(match[2] ?? '', line), value: parseValue(match[3]!, line) };
}

function familyOf(families: Map<string, Family>, sample: string): Family | undefined {
  for (const family of families.values()) {
    if (SUFFIXES[family.type].some((suffix) => `${family.name}${suffix}` === sample)) return family;
  }
  return undefined;
}

function readComment(families: Map<string, Family>, line: string): void {
  const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
  if (!match) return; // other comments are allowed
  const [, kind, name, rest] = match;
  if (!NAME.test(name!)) throw new Error(`bad metric name in: ${line}`);
  const family = families.get(name!) ?? { name: name!, type: 'untyped' as MetricType, help: '', samples: [] };
  if (kind === 'TYPE') {
    if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest!))
      throw new Error(`bad type in: ${line}`);
    if (family.samples.length) throw new Error(`TYPE after samples in: ${line}`);
    family.type = rest as MetricType;
  } else family.help = rest!;
  families.set(name!, family);
}

function checkHistogram(family: Family): void {
  const series = new Map<string, Sample[]>();
  for (const sample of family.samples) {
    if (!sample.name.endsWith('_bucket')) continue;
    const { le, ...rest } = sample.labels;
    if (le === undefined) throw new Error(`${family.name}: a bucket without le`);
    const key = JSON.stringify(rest);
    series.set(key, [...(series.get(key) ?? []), sample]);
  }
  for (const [key, buckets] of series) {
    const bounds = buckets.map((bucket) => parseValue(bucket.labels.le!, family.name));
    if (bounds.at(-1) !== Infinity) throw new Error(`${family.name}${key}: the last bucket is not +Inf`);
    for (let index = 1; index < buckets.length; index++) {
      if (bounds[index]! <= bounds[index - 1]! || buckets[index]!.value < buckets[index - 1]!.value)
        throw new Error(`${family.name}${key}: buckets not cumulative`);
    }
    const total = family.samples.find(
      (sample) => sample.name === `${family.name}_count` && JSON.stringify(sample.labels) === key,
    );
    if (!total || total.value !== buckets.at(-1)!.value)
      throw new Error(`${family.name}${key}: _count differs from the +Inf bucket`);
  }
}

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      readComment(families, line);
      continue;
    }
    const sample = parseSample(line);
    const family = familyOf(families, sample.name);
    if (!family) throw new Error(`sample of an undeclared metric: ${line}`);
    if (family.type === 'counter' && !(sample.value >= 0)) throw new Error(`negative counter: ${line}`);
    family.samples.push(sample);
  }
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

export function seriesKey(sample: Sample): string {
  return `${sample.name}${JSON.stringify(Object.fromEntries(Object.entries(sample.labels).sort()))}`;
}

/**
 * `promtool check metrics` from Debian's prometheus package, when it is installed:
 * `parsed` is false on a format error (exit 1); `problems` are its lint findings (exit 3).
 */
export async function promtoolCheck(
  text: string,
): Promise<{ ran: boolean; parsed: boolean; problems: string[]; output: string }> {
  const binary = process.env.B365_PROMTOOL ?? 'promtool';
  const result = await execa(binary, ['check', 'metrics'], { input: text, reject: false });
  if (result.exitCode === undefined) return { ran: false, parsed: false, problems: [], output: '' };
  const output = `${result.stdout}${result.stderr}`;
  const problems = result.exitCode === 3 ? output.split('\n').filter((line) => line.trim() !== '') : [];
  return { ran: true, parsed: result.exitCode === 0 || result.exitCode === 3, problems, output };
}
