// Worker thread: compress one chunk slot of the shared buffer into an LZ4 frame.
import { parentPort } from 'node:worker_threads';
import { encodeFrame } from '../../src/format/lz4-frame.js';

interface Task {
  id: number;
  shared: SharedArrayBuffer;
  offset: number;
  length: number;
}

parentPort!.on('message', (task: Task) => {
  try {
    const frame = encodeFrame(Buffer.from(task.shared, task.offset, task.length));
    // Small frames may live in Node's shared allocation pool: copy those, move the rest.
    const owned = frame.byteOffset === 0 && frame.buffer.byteLength === frame.length ? frame : Buffer.from(frame);
    const transfer = owned.byteOffset === 0 && owned.buffer.byteLength === owned.length ? [owned.buffer as ArrayBuffer] : [];
    parentPort!.postMessage({ id: task.id, frame: owned }, transfer);
  } catch (error) {
    parentPort!.postMessage({ id: task.id, error: (error as Error).message });
  }
});
