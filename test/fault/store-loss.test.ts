// A chunk deleted from the store under a committed image: the restore stops naming it,
// content verification reports it and marks the image, and the next image uploads it
// again and heals the image.
import t from 'tap';
import { damagedChunkScenario } from './store-damage.js';

t.test('a chunk deleted from the store', (t) => damagedChunkScenario(t, 'deleted'));
