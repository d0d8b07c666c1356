// A chunk with flipped bytes and a truncated chunk under a committed image: the restore
// stops naming the chunk, content verification reports it and marks the image, and the
// next image of the disk sends the chunk again and makes every image whole.
import t from 'tap';
import { damagedChunkScenario } from './store-damage.js';

t.test('a chunk corrupted in the store', (t) => damagedChunkScenario(t, 'corrupted'));
t.test('a chunk truncated in the store', (t) => damagedChunkScenario(t, 'truncated'));
