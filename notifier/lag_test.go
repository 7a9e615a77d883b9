package notifier

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// Lag counts from the log start while the group has committed nothing (the
// group starts there), then from its commits.
func TestGroupLag(t *testing.T) {
	b := startBroker(t)
	cl := topicsClient(t, b, kafkax.Config{Partitions: 2}, DefaultRetrySchedule())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := &testEnv{t: t, broker: b, cl: cl} // no notifier: nothing moves the group's offsets
	adm := kadm.NewClient(cl)

	var evs []schemas.CallEvent
	for i := range 5 {
		evs = append(evs, event(callID(), "ws_b", i+1, schemas.StatusQueued, ""))
	}
	e.emit(evs...)
	lag, err := kafkax.GroupLag(ctx, adm, "lag-probe", []string{schemas.TopicEvents})
	if err != nil {
		t.Fatal(err)
	}
	if lag[schemas.TopicEvents] != 5 {
		t.Fatalf("lag of a group that never committed = %v, want 5", lag)
	}
	ends, err := adm.ListEndOffsets(ctx, schemas.TopicEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.CommitAllOffsets(ctx, "lag-probe", ends.Offsets()); err != nil {
		t.Fatal(err)
	}
	e.emit(event(callID(), "ws_b", 1, schemas.StatusQueued, ""))
	lag, err = kafkax.GroupLag(ctx, adm, "lag-probe", []string{schemas.TopicEvents})
	if err != nil {
		t.Fatal(err)
	}
	if lag[schemas.TopicEvents] != 1 {
		t.Fatalf("lag after committing the end and writing one more = %v, want 1", lag)
	}
}

// One delivery that fails moves exactly one attempt to "retry" and one
// retry to step 1, and the event waiting on its retry topic shows as that
// topic's depth (the group's lag on it) until it is due; the events topic
// drains to zero.
func TestConsumerLagAndRetryDepth(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request, http.ResponseWriter) int { return http.StatusServiceUnavailable })
	e := newEnv(t, func(c *Config) { c.RetrySchedule = []time.Duration{0, time.Hour} })
	retryTopic := RetryTopic(time.Hour)
	group := e.cfg.GroupID
	if group == "" {
		group = DefaultGroupID
	}
	testutil.Eventually(t, 3*lagInterval, "lag series of every consumed topic", func() bool {
		return hasSeries(e, "dialstream_notifier_consumer_lag_records", "group", group, "topic", schemas.TopicEvents) &&
			hasSeries(e, "dialstream_notifier_consumer_lag_records", "group", group, "topic", retryTopic) &&
			hasSeries(e, "dialstream_notifier_consumer_lag_records", "group", group, "topic", schemas.TopicWebhookRedeliver)
	})

	e.emit(event(callID(), "ws_b", 1, schemas.StatusQueued, rc.URL))
	testutil.Eventually(t, 10*time.Second, "one failed attempt scheduled for retry", func() bool {
		return e.metric("dialstream_notifier_retries_scheduled_total", "step", "1") == 1
	})
	testutil.Eventually(t, 4*lagInterval, "retry depth 1, events lag 0", func() bool {
		return e.metric("dialstream_notifier_consumer_lag_records", "topic", retryTopic) == 1 &&
			e.metric("dialstream_notifier_consumer_lag_records", "topic", schemas.TopicEvents) == 0
	})
	if got := e.metric("dialstream_notifier_webhook_attempts_total", "result", "retry"); got != 1 {
		t.Errorf("attempts{result=retry} = %v, want 1", got)
	}
	if got := e.metric("dialstream_notifier_webhook_attempts_total", "result", "success"); got != 0 {
		t.Errorf("attempts{result=success} = %v, want 0", got)
	}
	if rc.count() != 1 {
		t.Errorf("%d requests, want 1", rc.count())
	}
}

func hasSeries(e *testEnv, name string, kv ...string) bool {
	mfs, _ := e.cfg.Metrics.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, kv) {
				return true
			}
		}
	}
	return false
}
