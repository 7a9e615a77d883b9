package callrecords

import (
	"context"
	"database/sql"
	"errors"
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
// transaction, then its campaigns and their contacts (batch contacts per
// transaction); it returns how many calls it deleted.
func (s *Store) PurgeWorkspace(ctx context.Context, ws string, batch int) (int, error) {
	n, err := s.deleteBatches(ctx, batch, `SELECT call_id FROM calls WHERE workspace_id = $1 LIMIT $2`, ws)
	if err == nil {
		err = s.purgeCampaigns(ctx, ws, batch)
	}
	if err != nil {
		return n, fmt.Errorf("callrecords: purge workspace %s: %w", ws, err)
	}
	return n, nil
}

// DeleteCampaignsFinishedBefore deletes the campaigns that finished
// (completed or canceled) before t, each with its contacts, batch
// contacts per transaction, until none is left or ctx ends; it returns
// how many campaigns it deleted.
func (s *Store) DeleteCampaignsFinishedBefore(ctx context.Context, t time.Time, batch int) (int, error) {
	n := 0
	for {
		var ws, id string
		err := s.db.QueryRowContext(ctx, `SELECT workspace_id, campaign_id FROM campaigns WHERE finished_at < $1
			ORDER BY finished_at LIMIT 1`, t.UnixNano()).Scan(&ws, &id)
		if errors.Is(err, sql.ErrNoRows) {
			return n, nil
		}
		if err == nil {
			err = s.deleteCampaign(ctx, ws, id, batch)
		}
		if err != nil {
			return n, fmt.Errorf("callrecords: delete campaigns finished before %s: %w", t.UTC().Format(time.RFC3339), err)
		}
		n++
	}
}

// purgeCampaigns deletes workspace ws's campaigns, then the contacts of
// ws whose campaign row is gone already (a tombstone, or a contact read
// before its campaign).
func (s *Store) purgeCampaigns(ctx context.Context, ws string, batch int) error {
	for _, pick := range []string{
		`SELECT campaign_id FROM campaigns WHERE workspace_id = $1 LIMIT 1`,
		`SELECT campaign_id FROM campaign_contacts WHERE workspace_id = $1 LIMIT 1`,
	} {
		for {
			var id string
			err := s.db.QueryRowContext(ctx, pick, text(ws)).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				break
			}
			if err == nil {
				err = s.deleteCampaign(ctx, ws, id, batch)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteCampaign deletes the contacts of workspace ws's campaign id, batch
// per transaction, and the campaign's row in the transaction of the last
// ones: until then the campaign is still there to be deleted again, so an
// interrupted delete is finished by the next run rather than leaving
// contacts no campaign row leads to.
func (s *Store) deleteCampaign(ctx context.Context, ws, id string, batch int) error {
	if batch <= 0 {
		batch = DefaultDeleteBatch
	}
	for {
		var n int64
		err := s.Write(ctx, func(w *Writer) error {
			res, err := w.tx.ExecContext(ctx, `DELETE FROM campaign_contacts WHERE campaign_id = $1 AND contact_id IN
				(SELECT contact_id FROM campaign_contacts WHERE campaign_id = $1 AND workspace_id = $2 LIMIT $3)`, text(id), text(ws), batch)
			if err != nil {
				return fmt.Errorf("delete contacts of campaign %s: %w", id, err)
			}
			if n, err = res.RowsAffected(); err != nil || n == int64(batch) {
				return err
			}
			if _, err := w.tx.ExecContext(ctx, `DELETE FROM campaigns WHERE campaign_id = $1 AND workspace_id = $2`, text(id), text(ws)); err != nil {
				return fmt.Errorf("delete campaign %s: %w", id, err)
			}
			return nil
		})
		if err != nil || n < int64(batch) {
			return err
		}
	}
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
			for _, table := range []string{"call_events", "webhook_deliveries", "scheduled_calls", "calls"} {
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
