package compliance

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

const million = 1_000_000

// suppressedNumber is the i-th of a million distinct New York numbers.
func suppressedNumber(i int) string { return "+1212" + strconv.Itoa(2000000+i) }

func loadMillion(tb testing.TB) *Table {
	tb.Helper()
	t := NewTable()
	at := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	for i := range million {
		if err := t.Add("ws_us", suppressedNumber(i), schemas.ReasonOptOut, at); err != nil {
			tb.Fatal(err)
		}
	}
	t.SetReady()
	return t
}

// The dial-time check with a million numbers on the list: a number that is
// not listed goes through every rule (lookup, classification, destination,
// caps, hours); a listed one stops at the lookup.
func BenchmarkCheckMillionSuppressed(b *testing.B) {
	c := &Checker{Policies: policies{"ws_us/": DefaultPolicy("US")}, Suppressions: loadMillion(b), Attempts: NewAttempts()}
	c.Attempts.SetReady()
	at := utc("2026-07-16T16:00:00Z") // 12:00 in New York
	for _, bc := range []struct{ name, number string }{
		{"not_listed", "+13105550123"},
		{"listed", suppressedNumber(million / 2)},
		{"not_listed_outside_hours", "+61291234567"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			// Once before the timed loop: the first number typed builds
			// the process's region index (TypeAndRegion, about 45 ms),
			// which a short run would otherwise spread over its calls.
			if _, err := c.Check("ws_us", "", bc.number, at); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := c.Check("ws_us", "", bc.number, at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("lookup_only", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := c.Suppressions.Lookup("ws_us", "+13105550123"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The heap a million listed numbers take (bytes per number is the figure).
func BenchmarkTableMemoryMillion(b *testing.B) {
	for b.Loop() {
		before := heapInUse()
		t := loadMillion(b)
		after := heapInUse()
		b.ReportMetric(float64(after-before), "heap-bytes")
		b.ReportMetric(float64(after-before)/million, "bytes/number")
		runtime.KeepAlive(t)
	}
}

// The heap of a week's attempt history for a million numbers dialed once.
func BenchmarkAttemptsMemoryMillion(b *testing.B) {
	at := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	for b.Loop() {
		before := heapInUse()
		a := NewAttempts()
		for i := range million {
			a.Record("ws_us", suppressedNumber(i), strconv.Itoa(i), at)
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before), "heap-bytes")
		b.ReportMetric(float64(after-before)/million, "bytes/number")
		runtime.KeepAlive(a)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
