package kafkax

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// TopicSpec describes one topic a service needs.
type TopicSpec struct {
	Name       string
	Partitions int32
	Configs    map[string]*string
}

func ptr(s string) *string { return &s }

// CallTopics are the topics of the call pipeline. The requested and state
// topics get the same partition count: the dialer finds a call's state in the
// partition number its request came from.
func CallTopics(partitions int) []TopicSpec {
	p := int32(partitions)
	return []TopicSpec{
		{Name: schemas.TopicRequested, Partitions: p},
		{Name: schemas.TopicEvents, Partitions: p},
		{Name: schemas.TopicState, Partitions: p, Configs: map[string]*string{"cleanup.policy": ptr("compact")}},
		{Name: schemas.TopicRequestsDLQ, Partitions: p},
	}
}

// EnsureTopics creates the topics that do not exist yet. It leaves existing
// topics alone, except that it fails when a topic has fewer partitions than
// the spec: co-partitioned topics with different counts would send a call's
// records to different partition numbers.
func EnsureTopics(ctx context.Context, cl *kgo.Client, replicationFactor int, specs ...TopicSpec) error {
	adm := kadm.NewClient(cl)
	for _, s := range specs {
		resp, err := adm.CreateTopic(ctx, s.Partitions, int16(replicationFactor), s.Configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s: %w", s.Name, err)
		}
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	for _, s := range specs {
		d, ok := details[s.Name]
		if !ok || d.Err != nil {
			return fmt.Errorf("kafka: topic %s not available: %v", s.Name, d.Err)
		}
		if got := int32(len(d.Partitions)); got != s.Partitions {
			return fmt.Errorf("kafka: topic %s has %d partitions, want %d (KAFKA_TOPIC_PARTITIONS must match the existing topics)", s.Name, got, s.Partitions)
		}
	}
	return nil
}

// CreateTopics creates, from the one spec (Topics), the named topics that do
// not exist yet, with the spec's partitions, replication and configs, and
// then checks that each has the spec's partition count. It is how a service
// with KAFKA_CREATE_TOPICS makes what it needs: the topics come out exactly
// as `dialstream topics apply` would make them. Existing topics are left as
// they are (apply is the tool that changes configs).
func CreateTopics(ctx context.Context, cl *kgo.Client, tc TopicsConfig, names ...string) error {
	spec, err := Topics(tc)
	if err != nil {
		return fmt.Errorf("kafka: topic spec: %w", err)
	}
	byName := make(map[string]Topic, len(spec))
	for _, t := range spec {
		byName[t.Name] = t
	}
	adm := kadm.NewClient(cl)
	for _, n := range names {
		t, ok := byName[n]
		if !ok {
			return fmt.Errorf("kafka: topic %s is not in the spec", n)
		}
		configs := make(map[string]*string, len(t.Configs))
		for k, v := range t.Configs {
			configs[k] = &v
		}
		resp, err := adm.CreateTopic(ctx, t.Partitions, t.ReplicationFactor, configs, t.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s: %w", t.Name, err)
		}
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	for _, n := range names {
		d, ok := details[n]
		if !ok || d.Err != nil {
			return fmt.Errorf("kafka: topic %s not available: %v", n, d.Err)
		}
		if got, want := int32(len(d.Partitions)), byName[n].Partitions; got != want {
			return fmt.Errorf("kafka: topic %s has %d partitions, want %d (KAFKA_TOPIC_PARTITIONS must match the existing topics)", n, got, want)
		}
	}
	return nil
}

// CallTopicNames are the topics of the call pipeline every service reads or
// writes: the requested and state topics share one partition count (the
// dialer finds a call's state by its request's partition number).
var CallTopicNames = []string{schemas.TopicRequested, schemas.TopicEvents, schemas.TopicState, schemas.TopicRequestsDLQ}
