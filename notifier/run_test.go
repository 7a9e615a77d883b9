package notifier

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/dialstream/dialstream/internal/kafkax"
)

// The topics the notifier creates are those of `dialstream topics apply`:
// the spec's partitions, retention and cleanup policy, a retry topic per
// distinct delay of the schedule included.
func TestCreatedTopicsMatchTheSpec(t *testing.T) {
	k := kafkax.Config{Partitions: 2}
	schedule := []time.Duration{0, time.Second, time.Minute, time.Minute}
	cl := topicsClient(t, startBroker(t), k, schedule)
	tc := k.TopicsConfig()
	tc.WebhookRetryTopics = RetryTopics(schedule)
	spec, err := kafkax.Topics(tc)
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Collect(maps.Keys(tc.WebhookRetryTopics)), topics...)
	spec = slices.DeleteFunc(spec, func(tp kafkax.Topic) bool { return !slices.Contains(want, tp.Name) })
	if len(spec) != len(topics)+2 {
		t.Fatalf("spec has %d of the notifier's topics, want %d", len(spec), len(topics)+2)
	}
	plan, err := kafkax.PlanTopics(context.Background(), kadm.NewClient(cl), spec)
	if err != nil || len(plan.Changes) != 0 {
		t.Fatalf("topics differ from the spec: %v %v", plan.Changes, err)
	}
}
