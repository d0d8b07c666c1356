// Worker thread: compress one chunk slot of the shared buffer into LZ4 frame blocks.
// The blocks are moved (not copied) back to the main thread where Node allows it.
import * as workerThreads from 'node:worker_threads';
import { parentPort } from 'node:worker_threads';
import { encodeBlocks } from '../../src/format/lz4-frame.js';
import { GarbageBudget } from '../../src/core/heap-budget.js';

interface Task {
  id: number;
  shared: SharedArrayBuffer;
  offset: number;
  length: number;
}

const garbage = new GarbageBudget(4 << 20);

/**
 * Node 24 (the shipped runtime) marks buffers that native addons allocate, as lz4-napi's
 * output is, untransferable, and postMessage throws on them: those are copied instead.
 * Node 20 has no such mark (nor the function that reads it) and moves them all.
 */
const isMarkedAsUntransferable =
  (workerThreads as { isMarkedAsUntransferable?: (object: unknown) => boolean }).isMarkedAsUntransferable ??
  (() => false);

function transferable(block: Buffer): boolean {
  return block.byteOffset === 0 && block.buffer.byteLength === block.length && !isMarkedAsUntransferable(block.buffer);
}

parentPort!.on('message', (task: Task) => {
  try {
    const blocks = encodeBlocks(Buffer.from(task.shared, task.offset, task.length));
    const transfer = blocks.filter(transferable).map((block) => block.buffer as ArrayBuffer);
    parentPort!.postMessage({ id: task.id, blocks }, transfer);
    garbage.add(task.length);
  } catch (error) {
    parentPort!.postMessage({ id: task.id, error: (error as Error).message });
  }
});
