// The layering of the code base, checked from the import statements of every module: the shared
// kernel imports no application, the applications do not import each other, and imaging and the
// server stay apart from the command-line shell. A failure names the file and the import.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOURCE_FOLDERS = ['src', 'imaging', 'server'];

/** A layer is a folder prefix; the most specific prefix that matches a file names its layer. */
const LAYERS = [
  'src/core',
  'src/format',
  'src/client',
  'src/install',
  'src/cli',
  'src/agent',
  'src/rescue',
  'imaging',
  'server',
] as const;
type Layer = (typeof LAYERS)[number];

const APPLICATIONS = ['src/cli', 'src/agent', 'src/rescue'];
const KERNEL_MAY_NOT = [...APPLICATIONS, 'server', 'imaging'];
// imaging reaches a repository only through the ports (src/client/ports.ts), never the HTTP client itself.
const HTTP_CLIENT = ['src/client/repository.ts', 'src/client/http.ts', 'src/client/plain-http.ts'];

/**
 * What each layer must not import, as folder or file paths. src/cli is the shell that calls every
 * application, so it has no entry.
 */
const FORBIDDEN: Partial<Record<Layer, string[]>> = {
  'src/core': KERNEL_MAY_NOT,
  'src/format': KERNEL_MAY_NOT,
  'src/client': KERNEL_MAY_NOT,
  'src/install': KERNEL_MAY_NOT,
  'src/agent': ['src/cli', 'src/rescue'],
  'src/rescue': ['src/cli', 'src/agent'],
  imaging: [...APPLICATIONS, 'server', ...HTTP_CLIENT],
  server: APPLICATIONS,
};

interface Violation {
  file: string;
  specifier: string;
  target: string;
}

function isWithin(file: string, folderOrFile: string): boolean {
  return file === folderOrFile || file.startsWith(`${folderOrFile}/`);
}

function layerOf(file: string): Layer | undefined {
  return LAYERS.find((layer) => isWithin(file, layer));
}

/** Every module a file names: static imports, re-exports and dynamic import() with a literal. */
function importedSpecifiers(source: string): string[] {
  const info = ts.preProcessFile(source, true, true);
  return info.importedFiles.map((imported) => imported.fileName);
}

/** The repository-relative path a relative specifier points at (.js written in ESM imports means the .ts source). */
function resolveRelative(file: string, specifier: string): string {
  const joined = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
  return joined.replace(/\.js$/, '.ts');
}

function violationsOf(file: string, source: string): Violation[] {
  const layer = layerOf(file);
  const forbidden = layer ? (FORBIDDEN[layer] ?? []) : [];
  const violations: Violation[] = [];
  for (const specifier of importedSpecifiers(source)) {
    if (!specifier.startsWith('.')) continue;
    const target = resolveRelative(file, specifier);
    if (layerOf(target) !== layer && forbidden.some((entry) => isWithin(target, entry))) {
      violations.push({ file, specifier, target });
    }
  }
  return violations;
}

function sourceFiles(folder: string): string[] {
  const entries = readdirSync(path.join(ROOT, folder), { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.posix.join(path.relative(ROOT, entry.parentPath).split(path.sep).join('/'), entry.name))
    .sort();
}

t.test('no module imports across a forbidden layer boundary', async (t) => {
  const files = SOURCE_FOLDERS.flatMap(sourceFiles);
  t.ok(files.length > 100, `read the sources (${files.length} files)`);
  const violations = files.flatMap((file) => violationsOf(file, readFileSync(path.join(ROOT, file), 'utf8')));
  const described = violations.map((v) => `${v.file} imports '${v.specifier}' (${v.target})`);
  t.same(described, [], 'layering violations');
});

t.test('the check sees every kind of import and names the offender', async (t) => {
  const source = [
    "import { printJson } from '../cli/output.js';",
    "export { runJob } from '../agent/job.js';",
    "const later = await import('../../server/main.js');",
    "import type { Manifest } from '../format/manifest.js';",
  ].join('\n');
  const found = violationsOf('src/rescue/example.ts', source).map((v) => v.target);
  t.same(found, ['src/cli/output.ts', 'src/agent/job.ts'], 'cli and agent flagged, server and format allowed');
  t.same(
    violationsOf('src/client/example.ts', "import { captureImage } from '../../imaging/capture/image.js';").map(
      (v) => v.target,
    ),
    ['imaging/capture/image.ts'],
    'the kernel may not import imaging',
  );
  t.same(
    violationsOf(
      'imaging/restore/example.ts',
      "import { RepositoryClient } from '../../src/client/repository.js';",
    ).map((v) => v.target),
    ['src/client/repository.ts'],
    'imaging may not import the HTTP client',
  );
  t.same(
    violationsOf('imaging/restore/example.ts', "import type { RepositorySource } from '../../src/client/ports.js';"),
    [],
    'imaging may use the ports',
  );
  t.same(
    violationsOf('src/cli/commands/example.ts', "import { run } from '../../agent/daemon.js';"),
    [],
    'the shell may',
  );
});
