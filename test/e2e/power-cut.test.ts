// A power cut of the repository's filesystem during uploads. The rescue ISO boots in qemu
// and serves (HTTPS) a repository kept on an ext4 virtio disk opened with cache=none; two clients
// on the host image their disks into it, and qemu is killed with SIGKILL twice: right after
// a commit was answered (that image must survive) and in the middle of chunk uploads. The
// disk must then pass e2fsck once its journal is replayed, and a server on the host must
// hold every reported image whole, with no stored object under its name with wrong bytes.
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import t, { type Test } from 'tap';
import {
  assertNothingLost,
  changeDisk,
  FaultRig,
  isCommitRequest,
  startRelay,
  succeeded,
  waitFor,
  type RelayedRequest,
  type RunningClient,
} from '../fault/helpers.js';
import { RepositoryClient } from '../../src/client/repository.js';
import { makeImageFile, MiB } from '../helpers/disk.js';
import { tempDir } from '../helpers/tmp.js';
import { ensureIso, extractBootFiles, liveAppend, serialLogPath, stage } from './helpers/artifacts.js';
import { QemuGuest } from './helpers/qemu.js';

const MINUTE = 60_000;
const GUEST_PORT = 8365;

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function isChunkUpload(request: RelayedRequest): boolean {
  return request.method === 'PUT' && /\/sessions\/[^/]+\/chunks\//.test(request.path);
}

/** One health call through a client that pins the guest's certificate. */
async function guestHealthy(server: string, fingerprint: string): Promise<boolean> {
  const client = new RepositoryClient({ server, token: '', fingerprint, retryForMs: 0 });
  try {
    return (await client.health()).ok;
  } catch {
    return false;
  } finally {
    await client.close();
  }
}

/** Ends a client the cut left retrying; SIGTERM must stop it within 10 s. */
async function stopClient(client: RunningClient): Promise<number> {
  client.child.kill('SIGTERM');
  const result = await client.done();
  return result.exitCode;
}

if (process.env.B365_E2E !== '1') {
  t.plan(0, 'end-to-end tests run with `make e2e` (B365_E2E=1)');
} else {
  t.test('power cuts of the repository disk during uploads lose nothing committed', async (t) => {
    const iso = await stage(t, 'rescue ISO', ensureIso);
    const work = await tempDir(t, 'b365-power-cut-');
    const boot = await extractBootFiles(iso, work);

    // The repository is made on the host first, so the host knows its admin token.
    const repoImage = path.join(work, 'repository.img');
    await makeImageFile(repoImage, 512 * MiB);
    await execa('mkfs.ext4', ['-q', '-F', '-L', 'repository', repoImage]);
    const repoMount = path.join(work, 'repo');
    await fs.mkdir(repoMount);
    const mountRepo = () => execa('mount', ['-o', 'loop', repoImage, repoMount]);
    const unmountRepo = () => execa('umount', [repoMount], { reject: false });
    t.teardown(unmountRepo);
    await mountRepo();
    const rig = await FaultRig.start(t, { repo: repoMount });
    const alpha = await rig.disk('alpha', { dataMiB: 4 });
    const bravo = await rig.disk('bravo', { dataMiB: 24 });
    await rig.server.stop();
    await unmountRepo();

    const hostPort = await freePort();
    const guestUrl = `https://127.0.0.1:${hostPort}`;
    // The guest serves HTTPS with the repository's own certificate, made on its first start;
    // the relay pins the fingerprint the guest announces.
    let guestFingerprint: string | null = null;
    let onAnswer: ((request: RelayedRequest, status: number) => void) | null = null;
    const relay = await startRelay(
      t,
      () => guestUrl,
      { answered: (request, status) => onAnswer?.(request, status) },
      { upstreamFingerprint: () => guestFingerprint },
    );
    const env = { B365_SERVER: relay.url };

    const bootGuest = async (t: Test, name: string): Promise<QemuGuest> => {
      const guest = await QemuGuest.start(t, {
        serialLog: await serialLogPath(name),
        kernel: { ...boot, append: liveAppend({ 'b365.serve': '/dev/vda', 'b365.listen': `0.0.0.0:${GUEST_PORT}` }) },
        cdrom: iso,
        disks: [{ file: repoImage, serial: 'B365-REPOSITORY', uncached: true }],
        forward: { hostPort, guestPort: GUEST_PORT },
      });
      const [, fingerprint] = await stage(t, `${name}: the guest boots and serves the repository disk`, () =>
        guest.waitFor(/B365-SERVING https:\/\/\S+ repository \/dev\/vda mounted at \S+ fingerprint (\S+)/, 15 * MINUTE),
      );
      if (guestFingerprint)
        t.equal(fingerprint, guestFingerprint, 'the repository keeps its certificate across the power cut');
      guestFingerprint = fingerprint!;
      await waitFor(
        'the guest server through the forwarded port',
        () => guestHealthy(guestUrl, guestFingerprint!),
        2 * MINUTE,
      );
      return guest;
    };

    /** Resolves once `decide` said so for an answered request and qemu was killed. */
    const cutWhen = (guest: QemuGuest, decide: (request: RelayedRequest, status: number) => boolean): Promise<void> =>
      new Promise((resolve) => {
        onAnswer = (request, status) => {
          if (!decide(request, status)) return;
          onAnswer = null;
          void guest.powerCut().then(resolve);
        };
      });

    await t.test('cut 1: right after a commit was answered, while another machine uploads', async (t) => {
      const guest = await bootGuest(t, 'power-cut-1');
      let chunks = 0;
      const cut = cutWhen(guest, (request, status) => {
        if (isChunkUpload(request)) chunks++;
        return isCommitRequest(request) && status >= 200 && status < 300;
      });
      const bravoRun = await rig.startImage(bravo, 'bravo', { env });
      await waitFor('bravo uploading', () => chunks >= 2, 10 * MINUTE);
      const alphaRun = await rig.startImage(alpha, 'alpha', { env });
      await stage(t, 'uploads until the first commit is answered, then SIGKILL qemu', () => cut);
      const alphaResult = await alphaRun.done();
      succeeded(t, alphaResult, "alpha's commit was answered before the cut, and its client says so");
      t.not(await stopClient(bravoRun), 0, 'bravo, cut mid-upload, does not report a commit');
      t.equal(rig.committed.size, 1, 'only alpha reported a commit');
    });

    await t.test('cut 2: in the middle of chunk uploads, after the guest replayed the first', async (t) => {
      await changeDisk(t, alpha);
      const guest = await bootGuest(t, 'power-cut-2');
      let chunks = 0;
      const cut = cutWhen(guest, (request) => isChunkUpload(request) && ++chunks >= 4);
      const bravoRun = await rig.startImage(bravo, 'bravo', { env });
      const alphaRun = await rig.startImage(alpha, 'alpha', { env });
      await stage(t, 'uploads until 4 chunks were stored, then SIGKILL qemu', () => cut);
      await stopClient(alphaRun);
      await stopClient(bravoRun);
      t.comment(`images reported committed so far: ${[...rig.committed.keys()].join(', ')}`);
    });

    await t.test('the repository disk after the cuts', async (t) => {
      // Mounting replays the journal, as the guest's next boot would; then the field's check.
      await mountRepo();
      await unmountRepo();
      const fsck = await execa('e2fsck', ['-fn', repoImage], { reject: false });
      t.equal(fsck.exitCode, 0, 'e2fsck -fn finds the replayed filesystem clean', {
        output: `${fsck.stdout}\n${fsck.stderr}`.slice(-3000),
      });
      await mountRepo();
      await rig.server.restart();
      // The clients' reruns resume or start over, and commit.
      succeeded(t, await rig.image(bravo, 'bravo'), 'bravo images after the cuts');
      succeeded(t, await rig.image(alpha, 'alpha'), 'alpha images after the cuts');
      await assertNothingLost(t, rig);
    });
  });
}
