package callrecords

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Deleting: retention (CALL_RECORDS_RETENTION) and a workspace's purge
// (a data-deletion request). Both delete whole calls, a bounded batch per
// transaction: on SQLite a transaction holds the one write lock, and on
// PostgreSQL a delete of a million rows in one transaction would hold its
// locks and its WAL until the end; between batches the recorder writes
// on. A call's events and attempts go in the transaction of its row, so
// a call is never half there.
//
// What these do not reach: Kafka keeps its copies of the records until
// the topics' own retention (KAFKA_TOPIC_RETENTION, days) drops them. A
// recorder that re-reads them (a new group, or a database restored from
// an older backup) takes in only calls requested within
// CALL_RECORDS_RETENTION, but would bring back a purged workspace's recent
// calls: purge again after such a re-read.

// DefaultDeleteBatch is how many calls one delete transaction removes.
const DefaultDeleteBatch = 1000

// DeleteRequestedBefore deletes the calls requested before t, batch calls
// per transaction, until none is left or ctx ends; it returns how many it
// deleted.
func (s *Store) DeleteRequestedBefore(ctx context.Context, t time.Time, batch int) (int, error) {
	n, err := s.deleteBatches(ctx, batch, `SELECT call_id FROM calls WHERE sort_at < $1 ORDER BY sort_at LIMIT $2`, t.UnixNano())
	if err != nil {
		return n, fmt.Errorf("callrecords: delete calls requested before %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}

// PurgeWorkspace deletes every call of workspace ws, batch calls per
// transaction; it returns how many it deleted.
func (s *Store) PurgeWorkspace(ctx context.Context, ws string, batch int) (int, error) {
	n, err := s.deleteBatches(ctx, batch, `SELECT call_id FROM calls WHERE workspace_id = $1 LIMIT $2`, ws)
	if err != nil {
		return n, fmt.Errorf("callrecords: purge workspace %s: %w", ws, err)
	}
	return n, nil
}

// deleteBatches deletes the calls pick selects ($1 = arg, $2 = batch) and
// their events and attempts, one transaction per batch, until a batch
// comes back short.
func (s *Store) deleteBatches(ctx context.Context, batch int, pick string, arg any) (int, error) {
	if batch <= 0 {
		batch = DefaultDeleteBatch
	}
	total := 0
	for {
		var n int
		err := s.Write(ctx, func(w *Writer) error {
			ids, err := pickIDs(ctx, w.tx, pick, arg, batch)
			if err != nil || len(ids) == 0 {
				return err
			}
			in, args := inList(ids)
			for _, table := range []string{"call_events", "webhook_deliveries", "calls"} {
				if _, err := w.tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE call_id IN (`+in+`)`, args...); err != nil {
					return fmt.Errorf("delete from %s: %w", table, err)
				}
			}
			n = len(ids)
			return nil
		})
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

func pickIDs(ctx context.Context, tx *sql.Tx, q string, arg any, batch int) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, arg, batch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// inList is "$1,$2,..." for ids, and ids as arguments.
func inList(ids []string) (string, []any) {
	var b strings.Builder
	args := make([]any, len(ids))
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("$" + strconv.Itoa(i+1))
		args[i] = id
	}
	return b.String(), args
}
