package kafkax

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// GroupLag is, per topic, the records between the group's committed offset
// and the high watermark, summed over partitions. A partition the group never
// committed counts from its log start, where the group starts reading it. A
// topic with any partition that could not be measured is left out (its gauge
// keeps the last value) rather than reported low.
func GroupLag(ctx context.Context, adm *kadm.Client, group string, topics []string) (map[string]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	commits, err := adm.FetchOffsetsForTopics(ctx, group, topics...)
	if errors.Is(err, kerr.GroupIDNotFound) {
		commits, err = nil, nil // a group that never committed (kfake says so; Kafka answers with no offsets)
	}
	if err != nil {
		return nil, err
	}
	lag, bad := map[string]int64{}, map[string]bool{}
	ends.Each(func(e kadm.ListedOffset) {
		from := int64(-1)
		if c, ok := commits.Lookup(e.Topic, e.Partition); ok && c.Err == nil && c.At >= 0 {
			from = c.At
		} else if s, ok := starts.Lookup(e.Topic, e.Partition); ok && s.Err == nil {
			from = s.Offset
		}
		if e.Err != nil || e.Offset < 0 || from < 0 {
			bad[e.Topic] = true
			return
		}
		lag[e.Topic] += max(0, e.Offset-from)
	})
	for t := range bad {
		delete(lag, t)
	}
	return lag, nil
}
