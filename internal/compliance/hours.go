package compliance

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Hours is a calling-hours policy: a daily window in the callee's local
// time, the weekdays it applies on, and holiday dates on which no call is
// placed. Build it with DefaultHours or HoursSpec.Parse; the zero value
// allows nothing.
type Hours struct {
	start, end int   // seconds after local midnight; end is exclusive, at most 24h
	days       uint8 // bit d set: time.Weekday(d) is a calling day
	holidays   map[int32]bool
}

// Default calling hours: 08:00-21:00 every day, the window US telemarketing
// rules allow in the called person's local time.
const (
	DefaultStart = "08:00"
	DefaultEnd   = "21:00"
)

// horizon bounds the search for the next allowed time. A month covers any
// weekly pattern plus a run of holidays; a policy that allows nothing for
// that long (or a number whose zones never share a window) has no next
// allowed time.
const horizon = 31 * 24 * time.Hour

const allDays = 1<<7 - 1

// DefaultHours returns 08:00-21:00 every day, no holidays.
func DefaultHours() Hours { return Hours{start: 8 * 3600, end: 21 * 3600, days: allDays} }

// AllDay returns hours that allow every second of every day: for numbers
// that can ring no one (the dev registry's test range).
func AllDay() Hours { return Hours{start: 0, end: 24 * 3600, days: allDays} }

// HoursSpec is calling hours as the registry writes them.
type HoursSpec struct {
	// Start and End bound the daily window, "HH:MM" in the callee's local
	// time; End is exclusive and may be "24:00" (through midnight). A window
	// that crosses midnight is not supported: calling rules are about the
	// day. Defaults 08:00 and 21:00.
	Start string `yaml:"start"`
	End   string `yaml:"end"`
	// Days are the calling days ("mon" ... "sun"); empty means every day.
	Days []string `yaml:"days"`
	// Holidays are dates ("2026-12-25") on which no call is placed, in the
	// callee's local calendar.
	Holidays []string `yaml:"holidays"`
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// Parse validates the spec and reports every problem, each naming its field.
func (s HoursSpec) Parse() (Hours, error) {
	var errs []error
	h := Hours{days: allDays}
	var err error
	if h.start, err = parseClock(s.Start, DefaultStart, false); err != nil {
		errs = append(errs, fmt.Errorf("start: %w", err))
	}
	if h.end, err = parseClock(s.End, DefaultEnd, true); err != nil {
		errs = append(errs, fmt.Errorf("end: %w", err))
	}
	if len(errs) == 0 && h.end <= h.start {
		errs = append(errs, fmt.Errorf("end: must be after start (%s), got %s; a window across midnight is not supported", clock(h.start), clock(h.end)))
	}
	if len(s.Days) > 0 {
		h.days = 0
		for _, d := range s.Days {
			i := slices.Index(dayNames, strings.ToLower(strings.TrimSpace(d)))
			if i < 0 {
				errs = append(errs, fmt.Errorf("days: %q is not one of %s", d, strings.Join(dayNames, ", ")))
				continue
			}
			h.days |= 1 << i
		}
	}
	for _, d := range s.Holidays {
		t, err := time.Parse(time.DateOnly, strings.TrimSpace(d))
		if err != nil {
			errs = append(errs, fmt.Errorf("holidays: %q is not a date like 2026-12-25", d))
			continue
		}
		if h.holidays == nil {
			h.holidays = map[int32]bool{}
		}
		h.holidays[dateKey(t)] = true
	}
	if err := errors.Join(errs...); err != nil {
		return Hours{}, err
	}
	return h, nil
}

// parseClock reads "HH:MM"; "24:00" only when allow24.
func parseClock(s, def string, allow24 bool) (int, error) {
	if s == "" {
		s = def
	}
	if allow24 && s == "24:00" {
		return 24 * 3600, nil
	}
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		hint := "00:00 to 23:59"
		if allow24 {
			hint = "00:00 to 24:00"
		}
		return 0, fmt.Errorf("must be HH:MM, %s, got %q", hint, s)
	}
	return t.Hour()*3600 + t.Minute()*60, nil
}

func clock(sec int) string { return fmt.Sprintf("%02d:%02d", sec/3600, sec%3600/60) }

func dateKey(t time.Time) int32 { return int32(t.Year()*10000 + int(t.Month())*100 + t.Day()) }

// String describes the hours for a refusal's reason: "08:00-21:00 every day".
func (h Hours) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s-%s", clock(h.start), clock(h.end))
	switch h.days {
	case allDays:
		b.WriteString(" every day")
	case 0:
		b.WriteString(" on no day")
	default:
		var ds []string
		for i, n := range dayNames {
			if h.days&(1<<i) != 0 {
				ds = append(ds, n)
			}
		}
		b.WriteString(" " + strings.Join(ds, ","))
	}
	if len(h.holidays) > 0 {
		fmt.Fprintf(&b, " except %d holidays", len(h.holidays))
	}
	return b.String()
}

// allDay reports whether the hours cover every second of every day.
func (h Hours) allDay() bool {
	return h.start == 0 && h.end == 24*3600 && h.days == allDays && len(h.holidays) == 0
}

// dayAllowed reports whether a local date is a calling day.
func (h Hours) dayAllowed(local time.Time) bool {
	return h.days&(1<<local.Weekday()) != 0 && !h.holidays[dateKey(local)]
}

// allowedIn reports whether t is inside the hours in zone loc.
func (h Hours) allowedIn(loc *time.Location, t time.Time) bool {
	local := t.In(loc)
	if !h.dayAllowed(local) {
		return false
	}
	s := local.Hour()*3600 + local.Minute()*60 + local.Second()
	return s >= h.start && s < h.end
}

// nextIn returns the earliest instant at or after t inside the hours in zone
// loc, or the zero time if there is none before the horizon.
func (h Hours) nextIn(loc *time.Location, t time.Time) time.Time {
	if h.allowedIn(loc, t) {
		return t
	}
	local := t.In(loc)
	y, m, d := local.Date()
	for i := 0; i <= int(horizon/(24*time.Hour)); i++ {
		day := time.Date(y, m, d+i, 12, 0, 0, 0, loc) // noon: never in a DST gap
		if !h.dayAllowed(day) {
			continue
		}
		// time.Date normalizes the seconds into the local clock, across a
		// DST change when there is one.
		s := time.Date(y, m, d+i, 0, 0, h.start, 0, loc)
		e := time.Date(y, m, d+i, 0, 0, h.end, 0, loc)
		if !s.After(t) {
			if t.Before(e) {
				// Inside the window's instants, yet not allowed at t:
				// only the repeated or skipped hour of a DST change
				// does that. Fall through to the minute walk below.
				s = t.Truncate(time.Minute).Add(time.Minute)
			} else {
				continue
			}
		}
		// A start inside a DST gap ("02:30" on the spring-forward day) has
		// no instant; Go picks one, which may read before the start. Walk
		// forward to the first minute that is inside, which is late rather
		// than early when in doubt.
		for j := 0; j < 3*60 && s.Before(e); j++ {
			if h.allowedIn(loc, s) {
				return s
			}
			s = s.Add(time.Minute)
		}
	}
	return time.Time{}
}

// AllowedIn reports whether at is inside the hours in every one of zones
// (nil: unknown, which means anywhere on Earth), and otherwise the earliest
// later instant that is, or the zero time if none comes within a month.
func (h Hours) AllowedIn(zones []*time.Location, at time.Time) (ok bool, nextAllowedAt time.Time) {
	if zones == nil {
		zones = anywhere
		// The local clocks of the anywhere zones sit 15 minutes apart
		// around the whole dial, so a daily gap of 15 minutes or more
		// always holds one of them: nothing is ever allowed. Saying so
		// here spares the search below 105 zones times a month of days.
		if 24*3600-(h.end-h.start) >= 15*60 {
			return false, time.Time{}
		}
	}
	if len(zones) == 0 {
		return false, time.Time{}
	}
	if h.allDay() {
		return true, at
	}
	all := true
	for _, z := range zones {
		if !h.allowedIn(z, at) {
			all = false
			break
		}
	}
	if all {
		return true, at
	}
	// Each round moves t to the latest of the zones' next windows; it stops
	// when every zone is inside at t. Each move lands on some zone's window
	// start, so the rounds are bounded by zones times days.
	t, limit := at, at.Add(horizon)
	for t.Before(limit) {
		latest := t
		for _, z := range zones {
			n := h.nextIn(z, t)
			if n.IsZero() {
				return false, time.Time{}
			}
			if n.After(latest) {
				latest = n
			}
		}
		if latest.Equal(t) {
			return false, t
		}
		t = latest
	}
	return false, time.Time{}
}

// Allowed reports whether a call to number may be placed at at, in every time
// zone the number may be in, and otherwise the earliest later instant when it
// may (zero if none within a month). A string that is not a phone number has
// an unknown zone.
func (h Hours) Allowed(number string, at time.Time) (ok bool, nextAllowedAt time.Time) {
	n, err := Classify(number)
	if err != nil {
		return h.AllowedIn(nil, at)
	}
	return h.AllowedIn(n.zones, at)
}
