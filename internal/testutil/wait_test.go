package testutil

import (
	"testing"
	"time"
)

// fakeT records a failure instead of ending the test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	panic(f)
}

func run(f func(t testing.TB)) (ft *fakeT) {
	ft = &fakeT{}
	defer func() {
		if r := recover(); r != nil && r != ft {
			panic(r)
		}
	}()
	f(ft)
	return ft
}

func TestEventually(t *testing.T) {
	start := time.Now()
	n := 0
	if ft := run(func(t testing.TB) { Eventually(t, time.Second, "n=3", func() bool { n++; return n == 3 }) }); ft.failed {
		t.Fatal("condition that came true was reported as timed out")
	}
	if ft := run(func(t testing.TB) { Eventually(t, 50*time.Millisecond, "never", func() bool { return false }) }); !ft.failed {
		t.Fatal("condition that never held did not fail")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("helpers do not stop")
	}
}

func TestConsistently(t *testing.T) {
	if ft := run(func(t testing.TB) { Consistently(t, 60*time.Millisecond, "true", func() bool { return true }) }); ft.failed {
		t.Fatal("a condition that held was reported as broken")
	}
	n := 0
	if ft := run(func(t testing.TB) { Consistently(t, time.Second, "n<2", func() bool { n++; return n < 2 }) }); !ft.failed {
		t.Fatal("a condition that broke was not reported")
	}
}
