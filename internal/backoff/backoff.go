// Package backoff waits between retries without ignoring the context: a
// shutdown or a lost partition ends the wait at once.
package backoff

import (
	"context"
	"time"
)

// Sleep waits d or until ctx ends; false means ctx ended.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Doubling is a delay that doubles after each wait, up to Max.
type Doubling struct {
	Next, Max time.Duration
}

// Wait sleeps the current delay, then doubles it; false means ctx ended.
func (b *Doubling) Wait(ctx context.Context) bool {
	ok := Sleep(ctx, b.Next)
	b.Next = min(2*b.Next, b.Max)
	return ok
}
