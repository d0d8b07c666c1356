// BLAKE3 of a file by the field's own tool, as an oracle independent of our code.
import { execa } from 'execa';

export async function b3sum(file: string): Promise<string> {
  const { stdout } = await execa('b3sum', ['--no-names', file]);
  return stdout.trim();
}
