package dialer

import (
	"context"
	"time"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/kafkax"
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
		if err == nil || kafkax.Fenced(err) {
			return err
		}
		o.log.Warn("dialer: fence commit failed; retrying before dialing", "err", err)
		if !wait.Wait(o.ctx) {
			return err
		}
	}
}

func (o *partitionOwner) commitFence() error {
	ctx, cancel := context.WithTimeout(o.ctx, 10*time.Second)
	defer cancel()
	return kafkax.CommitOffset(ctx, o.d.cons, schemas.TopicRequested, o.p, o.fenceOffset)
}
