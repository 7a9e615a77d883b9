// Package testutil holds the helpers that several packages' tests share. It
// is imported only from _test.go files.
package testutil

import (
	"testing"
	"time"
)

// pollInterval is how often the helpers check their condition.
const pollInterval = 20 * time.Millisecond

// Eventually polls cond until it holds, and fails the test when d passes
// first. Tests wait with it instead of sleeping a fixed time.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyWhy(t, d, what, func() (bool, string) { return cond(), "" })
}

// EventuallyWhy is Eventually for a condition that says why it does not hold
// yet; the last reason is in the failure.
func EventuallyWhy(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if why != "" {
				t.Fatalf("timed out after %s waiting for %s; last: %s", d, what, why)
			}
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(pollInterval)
	}
}

// Consistently polls cond for d and fails the moment it stops holding.
func Consistently(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
		time.Sleep(pollInterval)
	}
}
