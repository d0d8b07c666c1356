// Image identities. The server names an image `<machine>@<timestamp>` with the time it
// committed it, in ISO 8601 basic form (20261126T020013Z), which sorts and is safe in
// file names and URLs. Users may also say `<machine>@latest`.
import { UsageError } from '../core/errors.js';
import { MACHINE_NAME_PATTERN } from './manifest.js';

const machinePattern = new RegExp(MACHINE_NAME_PATTERN);
const TIMESTAMP_PATTERN = /^\d{8}T\d{6}Z$/;

export function isMachineName(name: string): boolean {
  return machinePattern.test(name);
}

/**
 * The one check of a machine name, wherever one enters (CLI, request bodies, paths,
 * image ids): it becomes a directory in the store, so nothing else may pass. `field`
 * says where the name came from, for the message.
 */
export function assertMachineName(name: unknown, field?: string): string {
  const where = field ? `${field}: ` : '';
  if (typeof name !== 'string')
    throw new UsageError(`${where}a machine name must be a string, got ${name === null ? 'null' : typeof name}`);
  if (!isMachineName(name)) {
    throw new UsageError(
      `${where}invalid machine name ${JSON.stringify(name)}: use 1-64 letters, digits, dot, dash or underscore, starting with a letter or digit`,
    );
  }
  return name;
}

export function isTimestamp(text: string): boolean {
  return TIMESTAMP_PATTERN.test(text);
}

export function timestampOf(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

export function dateOfTimestamp(timestamp: string): Date {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(timestamp);
  if (!match) throw new UsageError(`invalid image timestamp ${JSON.stringify(timestamp)}`);
  return new Date(`${match[1]}-${match[2]}-${match[3]}T${match[4]}:${match[5]}:${match[6]}Z`);
}

export function imageId(machine: string, timestamp: string): string {
  return `${machine}@${timestamp}`;
}

export interface ImageRef {
  machine: string;
  /** A full timestamp, a prefix of one (unique among the machine's images), or 'latest'. */
  selector: string;
}

export function parseImageRef(text: string): ImageRef {
  const at = text.lastIndexOf('@');
  if (at <= 0) throw new UsageError(`image ${JSON.stringify(text)} should be MACHINE@TIMESTAMP or MACHINE@latest`);
  const machine = assertMachineName(text.slice(0, at), `image ${JSON.stringify(text)}`);
  const selector = text.slice(at + 1);
  if (selector !== 'latest' && !/^\d{1,8}(T\d{0,6}Z?)?$/.test(selector)) {
    throw new UsageError(
      `image ${JSON.stringify(text)}: "${selector}" is neither "latest" nor a timestamp like 20261126T020013Z`,
    );
  }
  return { machine, selector };
}
