package kafkax

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CommitOffset commits one partition's offset for cl's group synchronously
// and returns the broker's answer for it. The coordinator accepts a commit
// only from a current member of the current generation, so success means no
// other member has been given the partition: committing the offset already
// committed is how a partition owner fences itself before writing what only
// the owner may write (Fenced tells that refusal from an outage).
func CommitOffset(ctx context.Context, cl *kgo.Client, topic string, partition int32, offset int64) error {
	var ferr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{
		topic: {partition: {Epoch: -1, Offset: offset}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			ferr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
					ferr = e
				}
			}
		}
	})
	return ferr
}

// Fenced reports whether a commit error means this member no longer owns
// its partitions (final), as opposed to a broker or coordinator that could
// not be reached (worth retrying).
func Fenced(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.FencedInstanceID) || errors.Is(err, context.Canceled)
}
