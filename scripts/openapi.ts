// Writes the OpenAPI document the server serves at /api/v1/openapi.json to a file, so
// that it can be linted (`make lint-api`) or handed to a client generator without a
// running server. Usage: node dist/scripts/openapi.js OUTPUT.json
import fs from 'node:fs/promises';
import { openApiDocument } from '../server/openapi.js';

const output = process.argv[2];
if (!output) {
  process.stderr.write('usage: node dist/scripts/openapi.js OUTPUT.json\n');
  process.exit(2);
}
await fs.writeFile(output, `${JSON.stringify(openApiDocument(), null, 2)}\n`);
