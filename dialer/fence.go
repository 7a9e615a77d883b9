package dialer

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/schemas"
)

// fence commits this partition's offset synchronously. The coordinator
// accepts a commit only from a current member of the current generation, so
// success means no other process has been given this partition: its next
// owner will load the dialing claims just written. A refusal that says this
// member is gone is final. Any other error (the broker or coordinator is
// unreachable) is retried for as long as this process owns the partition:
// giving up would leave claimed calls undialed, to be ended "in doubt" by the
// watchdog although nobody ever rang them.
func (o *partitionOwner) fence() error {
	wait := backoff.Doubling{Next: 200 * time.Millisecond, Max: 5 * time.Second}
	for {
		err := o.commitFence()
		if err == nil || fenced(err) {
			return err
		}
		o.log.Warn("dialer: fence commit failed; retrying before dialing", "err", err)
		if !wait.Wait(o.ctx) {
			return err
		}
	}
}

func fenced(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.FencedInstanceID) || errors.Is(err, context.Canceled)
}

func (o *partitionOwner) commitFence() error {
	ctx, cancel := context.WithTimeout(o.ctx, 10*time.Second)
	defer cancel()
	var ferr error
	o.d.cons.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{
		schemas.TopicRequested: {o.p: {Epoch: -1, Offset: o.fenceOffset}},
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
