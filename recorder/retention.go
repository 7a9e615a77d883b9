package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dialstream/dialstream/internal/callrecords"
)

// retention deletes, every interval, the calls requested longer ago than
// the retention, and the campaigns that finished longer ago with their
// contacts, a bounded batch per transaction (callrecords/retention.go
// says why). Every recorder replica runs it: two at once delete different
// batches or find nothing, which is cheap; electing one would be a
// coordination point to get wrong for no gain.
type retention struct {
	st       *callrecords.Store
	keep     time.Duration
	interval time.Duration
	batch    int
	now      func() time.Time
	log      *slog.Logger
	m        *metrics
}

func (r *retention) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// once runs one delete to the end.
func (r *retention) once(ctx context.Context) {
	bound := r.now().Add(-r.keep)
	n, err := r.st.DeleteRequestedBefore(ctx, bound, r.batch)
	r.m.retentionCalls.Add(float64(n))
	campaigns := 0
	if err == nil {
		campaigns, err = r.st.DeleteCampaignsFinishedBefore(ctx, bound, r.batch)
		r.m.retentionCampaigns.Add(float64(campaigns))
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return
	case err != nil:
		r.m.retentionRuns.WithLabelValues("error").Inc()
		r.log.Warn("recorder: retention delete failed; it runs again at the next interval", "deleted_calls", n,
			"deleted_campaigns", campaigns, "err", err)
		return
	}
	r.m.retentionRuns.WithLabelValues("ok").Inc()
	r.m.retentionLast.Set(float64(r.now().Unix()))
	if n > 0 || campaigns > 0 {
		r.log.Info("recorder: calls and campaigns past the retention deleted", "deleted_calls", n,
			"deleted_campaigns", campaigns, "before", bound.UTC().Format(time.RFC3339))
	}
}

// Purge deletes every call record of one workspace (a data-deletion
// request; `dialstream records purge --workspace ...`): its calls, their
// events and their delivery attempts, its campaigns and their contacts,
// DefaultDeleteBatch calls (or contacts) per transaction, while the
// recorder and ingest keep running. It returns how many calls it deleted.
//
// Kafka keeps its copies of the workspace's records until the topics'
// retention (KAFKA_TOPIC_RETENTION) drops them: a recorder that reads them
// again (a new RECORDER_GROUP_ID, a restored database) brings those calls
// back, and a call still going while the purge runs may leave its last
// events. Purge again after such a case; the topics' retention is the
// bound.
func Purge(ctx context.Context, databaseURL, workspace string, log *slog.Logger) (int, error) {
	if workspace == "" {
		return 0, errors.New("recorder: purge: a workspace id is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := callrecords.Open(ctx, databaseURL, callrecords.Options{Logger: log})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	n, err := st.PurgeWorkspace(ctx, workspace, callrecords.DefaultDeleteBatch)
	if err != nil {
		return n, fmt.Errorf("recorder: purge workspace %s (%d calls deleted before the error; run it again): %w", workspace, n, err)
	}
	log.Info("recorder: workspace purged", "workspace_id", workspace, "deleted_calls", n)
	return n, nil
}
