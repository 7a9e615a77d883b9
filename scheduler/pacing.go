package scheduler

import (
	"math"
	"time"
)

// pacer holds one campaign to its pacing: releases at least interval apart,
// with no burst, and at most maxConcurrent calls released and not yet ended.
//
// No burst is the trade-off taken: a token bucket would let a campaign that
// sat out a window catch up with a burst at the window's opening, which is
// what calls_per_second is there to prevent (carriers and the callee side's
// trunks see the burst, not the average). Spacing every release by
// 1/calls_per_second keeps every one-second window at or under the rate.
type pacer struct {
	interval      time.Duration
	maxConcurrent int
	last          time.Time // the last release; zero before the first
}

// newPacer rounds the interval up to the nanosecond: rounding it down would
// fit one release too many in some windows (at 3 calls/s, three intervals of
// 333,333,333 ns leave room for a fourth release inside one second).
func newPacer(callsPerSecond float64, maxConcurrent int) pacer {
	return pacer{interval: time.Duration(math.Ceil(float64(time.Second) / callsPerSecond)), maxConcurrent: maxConcurrent}
}

// next is the earliest instant at or after now when the pacing allows a
// release with inProgress calls running; ok is false while the concurrency
// limit holds (a call's end, not the clock, frees a slot).
func (p pacer) next(now time.Time, inProgress int) (at time.Time, ok bool) {
	if inProgress >= p.maxConcurrent {
		return time.Time{}, false
	}
	if p.last.IsZero() {
		return now, true
	}
	if due := p.last.Add(p.interval); due.After(now) {
		return due, true
	}
	return now, true
}

// released records a release at at.
func (p *pacer) released(at time.Time) { p.last = at }
