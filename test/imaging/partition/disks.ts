// Partitioned image files for the partition table tests, made with sfdisk and sgdisk,
// and the field's own tools read back as oracles (sfdisk --json/--dump, sgdisk).
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { PartitionTable } from '../../../src/format/manifest.js';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { readPartitionTable, type ReadTableResult } from '../../../imaging/partition/table.js';
import { applyDiskWrites, type DiskWrite } from '../../../imaging/partition/write.js';
import { makeImageFile, MiB, run, sfdisk } from '../../helpers/disk.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export { MiB };

export const TYPES = {
  biosBoot: '21686148-6449-6e6f-744e-656564454649',
  efiSystem: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b',
  linuxSwap: '0657fd6d-a4ab-43c4-84e5-0933c84b4f4f',
  linuxFilesystem: '0fc63daf-8483-4772-8e79-3d69d8477de4',
};

export const GPT_SCRIPT = `label: gpt
label-id: 5B3A1C2D-0E4F-4A6B-8C7D-9E0F1A2B3C4D
size=1MiB, type=${TYPES.biosBoot}, uuid=11111111-2222-4333-8444-555555555501, name="BIOS boot"
size=8MiB, type=${TYPES.efiSystem}, uuid=11111111-2222-4333-8444-555555555502, name="EFI System", attrs="RequiredPartition"
size=16MiB, type=${TYPES.linuxSwap}, uuid=11111111-2222-4333-8444-555555555503, name="swap"
type=${TYPES.linuxFilesystem}, uuid=11111111-2222-4333-8444-555555555504, name="root fs", attrs="LegacyBIOSBootable GUID:60"
`;

/** A primary NTFS partition, an extended partition and two logical Linux partitions. */
export function mbrScript(image: string): string {
  return `label: dos
label-id: 0x1234abcd
${image}1 : size=8MiB, type=7, bootable
${image}2 : size=40MiB, type=5
${image}5 : size=10MiB, type=83
${image}6 : type=83
`;
}

export async function gptDisk(directory: string, name = 'gpt.img', size = 64 * MiB): Promise<string> {
  const image = await makeImageFile(path.join(directory, name), size);
  await sfdisk(image, GPT_SCRIPT);
  return image;
}

export async function mbrDisk(directory: string, name = 'mbr.img', size = 64 * MiB): Promise<string> {
  const image = await makeImageFile(path.join(directory, name), size);
  await sfdisk(image, mbrScript(image));
  // Boot code of our own in front of the table, so that keeping it can be checked.
  const handle = await fs.open(image, 'r+');
  await handle.write(
    Buffer.from('\xfa\x33\xc0 boot code kept by a restore '.repeat(16).slice(0, 440), 'latin1'),
    0,
    440,
    0,
  );
  await handle.close();
  return image;
}

export async function hybridDisk(directory: string): Promise<string> {
  const image = await gptDisk(directory, 'hybrid.img');
  // Partitions 2 and 3 in the MBR too, the 0xEE entry first.
  await run('sgdisk', ['-h', '2:3', image]);
  return image;
}

export interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
  attrs?: string;
  bootable?: boolean;
}

export interface SfdiskTable {
  label: 'gpt' | 'dos';
  id: string;
  device: string;
  unit: string;
  firstlba?: number;
  lastlba?: number;
  sectorsize: number;
  partitions: SfdiskPartition[];
}

export async function sfdiskJson(device: string, nested?: 'dos'): Promise<SfdiskTable> {
  const stdout = await run('sfdisk', [...(nested ? ['--label-nested', nested] : []), '--json', device]);
  return (JSON.parse(stdout) as { partitiontable: SfdiskTable }).partitiontable;
}

/** `sfdisk --dump` with the device name taken out, to compare two images. */
export async function dumpOf(device: string, nested?: 'dos'): Promise<string> {
  const stdout = await run('sfdisk', [...(nested ? ['--label-nested', nested] : []), '--dump', device]);
  return stdout.split(device).join('DISK');
}

export function partitionNumberOf(node: string): number {
  return Number(/(\d+)$/.exec(node)![1]);
}

/** sfdisk's attrs text ("RequiredPartition LegacyBIOSBootable GUID:60") as the 64-bit mask. */
export function attributesFromSfdisk(text: string | undefined): bigint {
  let mask = 0n;
  for (const word of (text ?? '').split(/\s+/).filter(Boolean)) {
    if (word === 'RequiredPartition') mask |= 1n;
    else if (word === 'NoBlockIOProtocol') mask |= 2n;
    else if (word === 'LegacyBIOSBootable') mask |= 4n;
    else if (word.startsWith('GUID:')) for (const bit of word.slice(5).split(',')) mask |= 1n << BigInt(bit);
    else throw new Error(`unknown sfdisk attribute ${word}`);
  }
  return mask;
}

export async function readImageTable(image: string, sectorSize = 512): Promise<ReadTableResult> {
  const { reader, close } = await DeviceBlockReader.open(image);
  try {
    return await readPartitionTable(reader, sectorSize);
  } finally {
    await close();
  }
}

export async function writeBytes(image: string, offset: number, bytes: Buffer): Promise<void> {
  await applyImageWrites(image, [{ offset, bytes }]);
}

export async function applyImageWrites(image: string, writes: DiskWrite[]): Promise<void> {
  const handle = await fs.open(image, 'r+');
  try {
    await applyDiskWrites(handle, writes, image);
  } finally {
    await handle.close();
  }
}

/** A loop device with 4096-byte logical sectors, detached at teardown. */
export async function attachLoop4k(t: Teardown, image: string): Promise<string> {
  const device = await run('losetup', ['--find', '--show', '--sector-size', '4096', image]);
  t.teardown(async () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const result = await execa('losetup', ['--detach', device], { reject: false });
      if (result.exitCode === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  return device;
}

export type { PartitionTable };
