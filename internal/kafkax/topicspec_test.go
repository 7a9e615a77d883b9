package kafkax

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dialstream/dialstream/schemas"
)

func testSpec(t *testing.T, partitions int) []Topic {
	t.Helper()
	spec, err := Topics(TopicsConfig{
		Partitions: partitions, ReplicationFactor: 1,
		WebhookRetryTopics: map[string]time.Duration{
			schemas.TopicWebhookRetryPrefix + "5s":  5 * time.Second,
			schemas.TopicWebhookRetryPrefix + "10h": 10 * time.Hour,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func startAdmin(t *testing.T) *kadm.Client {
	t.Helper()
	b, err := StartBroker(BrokerConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// apply creates every topic as specified; a second apply changes nothing;
// the topics then have the spec's partitions and configs, set on the topic
// itself (not inherited from the broker).
func TestApplyTopicsIsIdempotent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := startAdmin(t)
	spec := testSpec(t, 3)

	first, err := ApplyTopics(ctx, adm, spec, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Changes) != len(spec) || !first.Applied {
		t.Fatalf("first apply: %d changes (applied %v), want %d creates", len(first.Changes), first.Applied, len(spec))
	}
	for _, ch := range first.Changes {
		if !ch.Create {
			t.Errorf("first apply: %s is not a create", ch)
		}
	}
	second, err := ApplyTopics(ctx, adm, spec, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Changes) != 0 {
		t.Fatalf("second apply changed %v", second.Changes)
	}
	assertTopicsMatch(ctx, t, adm, spec)
}

func assertTopicsMatch(ctx context.Context, t *testing.T, adm *kadm.Client, spec []Topic) {
	t.Helper()
	names := make([]string, len(spec))
	for i, s := range spec {
		names[i] = s.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spec {
		if got := len(details[s.Name].Partitions); got != int(s.Partitions) {
			t.Errorf("%s: %d partitions, want %d", s.Name, got, s.Partitions)
		}
		rc, err := rcs.On(s.Name, nil)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		got := map[string]kadm.Config{}
		for _, c := range rc.Configs {
			if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
				got[c.Key] = c
			}
		}
		for k, want := range s.Configs {
			if c, ok := got[k]; !ok || c.Value == nil || *c.Value != want {
				t.Errorf("%s: %s = %v, want %s set on the topic", s.Name, k, c.Value, want)
			}
		}
	}
}

// A config changed by hand is set back, and only that config is touched.
func TestApplyTopicsFixesDrift(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := startAdmin(t)
	spec := testSpec(t, 2)
	if _, err := ApplyTopics(ctx, adm, spec, false); err != nil {
		t.Fatal(err)
	}
	one := "1000"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: ConfigRetentionMs, Value: &one}}, schemas.TopicEvents); err != nil {
		t.Fatal(err)
	}
	plan, err := ApplyTopics(ctx, adm, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Changes) != 1 || plan.Applied || plan.Changes[0].Topic != schemas.TopicEvents ||
		plan.Changes[0].Was[ConfigRetentionMs] != "1000" || len(plan.Changes[0].Configs) != 1 {
		t.Fatalf("dry run: %+v, want one change of %s retention.ms from 1000", plan, schemas.TopicEvents)
	}
	if plan, err = ApplyTopics(ctx, adm, spec, false); err != nil || len(plan.Changes) != 1 {
		t.Fatalf("apply: %v %+v", err, plan)
	}
	assertTopicsMatch(ctx, t, adm, spec)
}

// A partition count that differs from the spec is refused in both
// directions, and nothing else is changed by that apply.
func TestApplyTopicsRefusesPartitionChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := startAdmin(t)
	if _, err := ApplyTopics(ctx, adm, testSpec(t, 3), false); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 6} {
		spec := testSpec(t, n)
		spec[1].Configs[ConfigRetentionMs] = "1234" // would be altered if apply went ahead
		_, err := ApplyTopics(ctx, adm, spec, false)
		if !errors.Is(err, ErrTopicsRefused) {
			t.Fatalf("%d partitions: err = %v, want ErrTopicsRefused", n, err)
		}
		if !strings.Contains(err.Error(), schemas.TopicRequested+" has 3 partitions, the spec") ||
			!strings.Contains(err.Error(), "KAFKA_TOPIC_PARTITIONS=3") {
			t.Errorf("error does not say what to do: %v", err)
		}
	}
	assertTopicsMatch(ctx, t, adm, testSpec(t, 3))
}

// A topic created meanwhile by a service (EnsureTopics: no configs) is
// brought to the spec.
func TestApplyTopicsAdoptsTopicsCreatedByServices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := startAdmin(t)
	spec := testSpec(t, 3)
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, schemas.TopicEvents); err != nil {
		t.Fatal(err)
	}
	plan, err := ApplyTopics(ctx, adm, spec, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Changes) != len(spec) {
		t.Fatalf("%d changes, want %d", len(plan.Changes), len(spec))
	}
	assertTopicsMatch(ctx, t, adm, spec)
}

func TestTopicsSpec(t *testing.T) {
	spec, err := Topics(TopicsConfig{Partitions: 6, ReplicationFactor: 3, WebhookRetryTopics: map[string]time.Duration{
		schemas.TopicWebhookRetryPrefix + "10h": 10 * time.Hour, schemas.TopicWebhookRetryPrefix + "5s": 5 * time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Topic{}
	for _, s := range spec {
		byName[s.Name] = s
		if s.Partitions != 6 || s.ReplicationFactor != 3 || s.Configs[ConfigMinInsyncReplicas] != "2" {
			t.Errorf("%s: %+v, want 6 partitions, rf 3, min.insync.replicas 2", s.Name, s)
		}
	}
	for _, name := range []string{schemas.TopicState, schemas.TopicWebhookEndpoints, schemas.TopicSuppressions} {
		if c := byName[name].Configs; c[ConfigCleanupPolicy] != "compact" || c[ConfigRetentionMs] != "" {
			t.Errorf("%s: %v, want compacted without retention.ms", name, c)
		}
	}
	if got := byName[schemas.TopicEvents].Configs[ConfigRetentionMs]; got != "691200000" {
		t.Errorf("events retention.ms = %s, want 8 days (the attempt caps read a week back)", got)
	}
	// A retry topic outlives its delay with jitter, plus the normal retention.
	if got := byName[schemas.TopicWebhookRetryPrefix+"10h"].Configs[ConfigRetentionMs]; got != "763200000" {
		t.Errorf("retry.10h retention.ms = %s, want 20h + 8d", got)
	}
	if spec[len(spec)-1].Name != schemas.TopicWebhookRetryPrefix+"10h" {
		t.Errorf("retry topics are not ordered by delay: last is %s", spec[len(spec)-1].Name)
	}

	// Broker-default replication leaves min.insync.replicas to the broker
	// unless it is given; RF 1 gets 1.
	for _, c := range []struct {
		rf, isr int
		want    string
	}{{-1, 0, ""}, {-1, 2, "2"}, {1, 0, "1"}, {2, 0, "1"}, {5, 0, "2"}, {5, 3, "3"}} {
		spec, err := Topics(TopicsConfig{Partitions: 1, ReplicationFactor: c.rf, MinInsyncReplicas: c.isr})
		if err != nil {
			t.Fatal(err)
		}
		if got := spec[0].Configs[ConfigMinInsyncReplicas]; got != c.want {
			t.Errorf("rf %d isr %d: min.insync.replicas %q, want %q", c.rf, c.isr, got, c.want)
		}
	}
	_, err = Topics(TopicsConfig{Partitions: 0, ReplicationFactor: 2, MinInsyncReplicas: 3})
	if err == nil || !strings.Contains(err.Error(), "KAFKA_TOPIC_PARTITIONS") || !strings.Contains(err.Error(), "KAFKA_MIN_INSYNC_REPLICAS") {
		t.Errorf("invalid config: err = %v, want both problems", err)
	}
}
