// Listing filters: only the conditions a caller set reach the WHERE clause, with their
// values in order (0 is a value, not "unset"), and row limits stay within bounds.
import t from 'tap';
import { MAX_LISTED_ROWS, rowLimit, whereClause } from '../../../server/catalog/row-filter.js';

t.test('where clause', async (t) => {
  t.same(whereClause([]), { where: '', values: [] });
  t.same(whereClause([['state = ?', undefined]]), { where: '', values: [] }, 'nothing set, no WHERE');
  t.same(
    whereClause([
      ['machine = ?', 'alpha'],
      ['started_at >= ?', 0],
      ['started_at < ?', undefined],
      ['state = ?', 'done'],
    ]),
    { where: 'WHERE machine = ? AND started_at >= ? AND state = ?', values: ['alpha', 0, 'done'] },
  );
});

t.test('row limit', async (t) => {
  t.equal(rowLimit(undefined, 500), 500, 'the fallback when none is asked');
  t.equal(rowLimit(0, 500), 1, 'at least one row');
  t.equal(rowLimit(10 ** 9, 500), MAX_LISTED_ROWS, 'never more than the bound');
  t.equal(rowLimit(42, 500), 42);
});
