package callrecords

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Open's migration is tried again while SQLite answers busy (it can,
// without waiting on busy_timeout, when two connections set up one new file
// at once), and only then: any other error is returned at once.
func TestRetryBusy(t *testing.T) {
	busy := fmt.Errorf("callrecords: migrate sqlite: %w", errors.New("failed to initialize: database is locked (5) (SQLITE_BUSY)"))
	calls := 0
	err := retryBusy(context.Background(), 5*time.Second, func() error {
		calls++
		if calls < 3 {
			return busy
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("busy twice, then fine: %v after %d calls, want nil after 3", err, calls)
	}

	calls = 0
	other := errors.New("callrecords: migrate sqlite: no such table")
	if err := retryBusy(context.Background(), 5*time.Second, func() error { calls++; return other }); !errors.Is(err, other) || calls != 1 {
		t.Fatalf("another error: %v after %d calls, want it at once", err, calls)
	}

	calls = 0
	start := time.Now()
	if err := retryBusy(context.Background(), 300*time.Millisecond, func() error { calls++; return busy }); !errors.Is(err, busy) {
		t.Fatalf("busy for good: %v, want the busy error", err)
	}
	if took := time.Since(start); took > 2*time.Second || calls < 2 {
		t.Fatalf("busy for good: gave up after %s and %d calls, want a few tries within the bound", took, calls)
	}
}
