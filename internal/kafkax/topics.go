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
