package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/schemas"
)

// windows is a campaign's weekly windows, each one a compliance.Hours, so a
// window means exactly what the workspace's calling hours mean (local time of
// the callee, end exclusive, every zone of the number inside).
type windows []compliance.Hours

// parseWindows validates a campaign's windows, every problem naming its index.
func parseWindows(ws []schemas.Window) (windows, error) {
	if len(ws) == 0 {
		return nil, errors.New("schedule.windows: at least one window is required")
	}
	out := make(windows, 0, len(ws))
	var errs []error
	for i, w := range ws {
		if len(w.Days) == 0 {
			errs = append(errs, fmt.Errorf("schedule.windows[%d].days: at least one day is required", i))
			continue
		}
		h, err := compliance.HoursSpec{Start: w.Start, End: w.End, Days: w.Days}.Parse()
		if err != nil {
			errs = append(errs, fmt.Errorf("schedule.windows[%d]: %w", i, err))
			continue
		}
		out = append(out, h)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// maxRounds bounds nextRelease's search. Each round moves t forward to a
// window start of the campaign or of the workspace's hours; a weekly pattern
// repeats within 7 days, so a few dozen rounds find any instant that exists,
// and compliance's own one-month horizon ends the rest.
const maxRounds = 64

// nextRelease returns the earliest instant at or after at when a callee in
// zones may be called: inside one of the campaign's windows and inside the
// workspace's calling hours, in every one of the zones. It returns the zero
// time when there is none within compliance's horizon (a campaign whose
// windows never meet the workspace's hours): the contact can never be called
// and the caller ends it rather than wait for ever.
//
// A number in several zones must fit one window in all of them at once; a
// union of windows that covers the zones only between them is not taken. It
// is the stricter reading, and the one a callee in any of those zones would
// agree with.
func (ws windows) nextRelease(hours compliance.Hours, zones []*time.Location, at time.Time) time.Time {
	t := at
	for range maxRounds {
		var wNext time.Time
		wOK := false
		for _, w := range ws {
			ok, next := w.AllowedIn(zones, t)
			if ok {
				wOK = true
				break
			}
			if !next.IsZero() && (wNext.IsZero() || next.Before(wNext)) {
				wNext = next
			}
		}
		hOK, hNext := hours.AllowedIn(zones, t)
		if wOK && hOK {
			return t
		}
		later := t
		if !wOK {
			if wNext.IsZero() {
				return time.Time{}
			}
			later = wNext
		}
		if !hOK {
			if hNext.IsZero() {
				return time.Time{}
			}
			if hNext.After(later) {
				later = hNext
			}
		}
		if !later.After(t) {
			return time.Time{}
		}
		if later.Sub(at) > 31*24*time.Hour {
			return time.Time{}
		}
		t = later
	}
	return time.Time{}
}
