// Copies the runnable b365 into a rescue image's root: the compiled program and the
// production dependencies named by package-lock.json (native addons included), and
// nothing a running program never loads (dev tools, tests' output, build leftovers).
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

interface LockEntry {
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
}

/** The compiled parts the CLI loads; tests and benchmarks stay behind. */
const PROGRAM_DIRECTORIES = ['src', 'imaging', 'server'];
/** Compiler intermediates and sources of native addons: the built `.node` files are what load. */
const SKIPPED_NAMES = new Set(['obj.target', '.deps', 'node_modules']);
const SKIPPED_SUFFIXES = ['.map', '.md', '.d.ts', '.o', '.a', '.mk', '.cc', '.c', '.h'];

function keep(source: string): boolean {
  const name = path.basename(source);
  return !SKIPPED_NAMES.has(name) && !SKIPPED_SUFFIXES.some((suffix) => name.endsWith(suffix));
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

/**
 * `modules` is the directory that holds the installed packages: the checkout's own
 * node_modules, or one staged and rebuilt for another Node (scripts/runtime.sh).
 */
export async function bundle(
  root: string,
  destination: string,
  modules = path.join(root, 'node_modules'),
): Promise<{ packages: number }> {
  const lock = JSON.parse(await fs.readFile(path.join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const manifest = JSON.parse(await fs.readFile(path.join(root, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
    type: string;
  };
  await fs.rm(destination, { recursive: true, force: true });
  await fs.mkdir(destination, { recursive: true });
  await fs.writeFile(
    path.join(destination, 'package.json'),
    `${JSON.stringify({ name: manifest.name, version: manifest.version, type: manifest.type, private: true }, null, 2)}\n`,
  );
  for (const directory of PROGRAM_DIRECTORIES) {
    await fs.cp(path.join(root, 'dist', directory), path.join(destination, 'dist', directory), {
      recursive: true,
      filter: (source) => !source.endsWith('.map'),
    });
  }
  let packages = 0;
  for (const [location, entry] of Object.entries(lock.packages)) {
    if (!location.startsWith('node_modules/') || entry.dev || entry.devOptional) continue;
    const source = path.join(modules, location.slice('node_modules/'.length));
    // Optional packages for other platforms are in the lock but not installed.
    if (!(await exists(source))) {
      if (entry.optional) continue;
      throw new Error(`production dependency ${location} is not installed; run npm ci`);
    }
    // Each nested node_modules is its own lock entry, copied on its own turn.
    await fs.cp(source, path.join(destination, location), {
      recursive: true,
      dereference: true,
      filter: (file) => file === source || keep(file),
    });
    packages++;
  }
  return { packages };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { root: { type: 'string' }, to: { type: 'string' }, modules: { type: 'string' } },
  });
  if (!values.root || !values.to)
    throw new Error('usage: bundle.js --root REPO --to DIRECTORY [--modules NODE_MODULES]');
  const modules = values.modules ? path.resolve(values.modules) : undefined;
  const { packages } = await bundle(path.resolve(values.root), path.resolve(values.to), modules);
  process.stderr.write(`bundle: b365 with ${packages} production packages in ${values.to}\n`);
}

await main();
