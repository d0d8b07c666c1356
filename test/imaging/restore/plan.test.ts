// The restore plan from a real captured manifest, before anything is written: a target
// too small refused with a message naming it, the table as fitted to the target, which
// volumes are written and how, and on a larger target with --grow, which partition grows.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { describeDevice } from '../../../imaging/device.js';
import { pickDisk, planRestore, type RestorePlan } from '../../../imaging/restore/plan.js';
import { NotFoundError, UnsafeTargetError } from '../../../src/core/errors.js';
import { attachLoop, makeImageFile, MiB } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { BOOT, captureSmallGptDisk, ROOT, SOURCE_SIZE } from './captured-disk.js';

t.test('planRestore', async (t) => {
  const directory = await tempDir(t);
  const captured = await captureSmallGptDisk(t, directory);
  const disk = pickDisk(captured.manifest);
  const planFor = async (name: string, size: number, options: { grow?: boolean; zeroUnused?: boolean } = {}) => {
    const file = await makeImageFile(path.join(directory, name), size);
    const target = await describeDevice(file);
    return { file, plan: planRestore({ imageId: captured.imageId, disk, target, fresh: false, ...options }) };
  };
  const sizes = (plan: RestorePlan) =>
    plan.table!.table.partitions.map((partition) => [partition.number, partition.start, partition.size]);

  t.test('the disk is picked by id or source, and an unknown one is named', async (t) => {
    t.equal(pickDisk(captured.manifest, disk.id), disk);
    t.equal(pickDisk(captured.manifest, disk.source), disk);
    t.throws(() => pickDisk(captured.manifest, 'sdz'), NotFoundError);
    t.throws(() => pickDisk(captured.manifest, 'sdz'), { message: new RegExp(`has no disk sdz; it has ${disk.id}`) });
  });

  t.test('a target of the same size gets the captured table and every volume', async (t) => {
    const { plan } = await planFor('same.img', SOURCE_SIZE);
    t.equal(plan.table?.table.type, 'gpt');
    t.same(sizes(plan), [
      [1, BOOT.start, BOOT.size],
      [2, ROOT.start, ROOT.size],
    ]);
    t.equal(plan.table?.table.lastUsableLba, disk.partitionTable.lastUsableLba, 'last usable LBA as captured');
    t.same(
      plan.volumes.map((planned) => planned.volume.id),
      disk.volumes.map((volume) => volume.id),
      'every volume, in disk order',
    );
    t.same(
      plan.volumes.filter((planned) => planned.maskSignatures).map((planned) => planned.volume.kind),
      plan.volumes.filter((planned) => planned.volume.kind === 'gap').map(() => 'gap'),
      'table signatures held back in gaps only',
    );
    t.ok(
      plan.volumes.every((planned) => !planned.writeHoles),
      'an image file is written sparse: its holes are zeros already',
    );
    t.equal(
      plan.bytesTotal,
      disk.volumes.reduce((sum, volume) => sum + volume.size, 0),
    );
    t.equal(plan.grow, null);
    t.equal(plan.confirmErase, true, 'an existing target of the right size is confirmed before it is erased');
    const lastSector = SOURCE_SIZE - 512;
    t.ok(
      plan.tableAreas.some((area) => area.offset === lastSector),
      'the backup GPT header is among the areas the table rewrites',
    );
  });

  t.test('a target too small is refused, naming it and the shortfall', async (t) => {
    const small = await makeImageFile(path.join(directory, 'small.img'), SOURCE_SIZE - 8 * MiB);
    const target = await describeDevice(small);
    t.throws(() => planRestore({ imageId: captured.imageId, disk, target, fresh: false }), UnsafeTargetError);
    t.throws(() => planRestore({ imageId: captured.imageId, disk, target, fresh: false }), {
      message: `refusing to restore onto ${small}, 40.0 MiB: it is 8.0 MiB (${8 * MiB} bytes) smaller than the 48.0 MiB source disk; nothing was written`,
    });
  });

  t.test('a larger target with grow: the last partition and its volume grow to its end', async (t) => {
    const { plan } = await planFor('larger.img', 2 * SOURCE_SIZE, { grow: true });
    const root = disk.volumes.find((volume) => volume.partitionNumber === 2)!;
    t.equal(plan.grow?.volume.id, root.id, 'the root volume grows');
    t.equal(plan.grow?.from.size, ROOT.size);
    t.equal(plan.grow?.to.start, ROOT.start, 'in place');
    t.equal(plan.grow?.to.size, 2 * SOURCE_SIZE - MiB - ROOT.start, 'to the last 1 MiB boundary before the backup GPT');
    t.same(sizes(plan)[0], [1, BOOT.start, BOOT.size], 'the first partition as captured');
    t.equal(plan.table?.table.lastUsableLba, (2 * SOURCE_SIZE) / 512 - 34, "the GPT reaches the target's end");
  });

  t.test('grow on a target of the same size grows nothing', async (t) => {
    const { plan } = await planFor('same-grow.img', SOURCE_SIZE, { grow: true });
    t.equal(plan.growRequested, true);
    t.equal(plan.grow, null, 'the last partition already ends at the last 1 MiB boundary');
    t.same(sizes(plan)[1], [2, ROOT.start, ROOT.size]);
  });

  t.test('a larger target without grow keeps every partition as captured', async (t) => {
    const { plan } = await planFor('larger-kept.img', 2 * SOURCE_SIZE);
    t.equal(plan.grow, null);
    t.equal(plan.growRequested, false);
    t.same(sizes(plan), [
      [1, BOOT.start, BOOT.size],
      [2, ROOT.start, ROOT.size],
    ]);
  });

  t.test('on a block device, raw volumes and (when asked) unused blocks are written as zeros', async (t) => {
    const { file } = await planFor('device.img', SOURCE_SIZE);
    const loop = await attachLoop(t, file);
    const target = await describeDevice(loop.device);
    const plain = planRestore({ imageId: captured.imageId, disk, target, fresh: false });
    t.ok(
      disk.volumes.some((volume) => volume.method === 'raw'),
      'the image has raw volumes (the gaps around the partitions)',
    );
    t.ok(
      disk.volumes.some((volume) => volume.method !== 'raw'),
      'and volumes captured by their used blocks',
    );
    t.same(
      plain.volumes.filter((planned) => planned.writeHoles).map((planned) => planned.volume.id),
      disk.volumes.filter((volume) => volume.method === 'raw').map((volume) => volume.id),
      'zeros of raw volumes reach the device',
    );
    const zeroed = planRestore({ imageId: captured.imageId, disk, target, fresh: false, zeroUnused: true });
    t.ok(
      zeroed.volumes.every((planned) => planned.writeHoles),
      'with zeroUnused every volume',
    );
  });

  t.test('a target created for the restore needs no confirmation; an empty file is too small', async (t) => {
    const empty = await describeDevice(await makeImageFile(path.join(directory, 'empty.img'), 0));
    const fresh = await describeDevice(await makeImageFile(path.join(directory, 'fresh.img'), SOURCE_SIZE));
    t.equal(planRestore({ imageId: captured.imageId, disk, target: fresh, fresh: true }).confirmErase, false);
    t.throws(() => planRestore({ imageId: captured.imageId, disk, target: empty, fresh: false }), UnsafeTargetError);
    await fs.rm(path.join(directory, 'empty.img'));
  });
});
