package compliance

import (
	"strings"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustHours(t *testing.T, s HoursSpec) Hours {
	t.Helper()
	h, err := s.Parse()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Clock-driven: every case fixes the instant and the number, and says what a
// caller must see: allowed or not, and when the next call may go.
func TestCallingHours(t *testing.T) {
	def := DefaultHours()
	xmas := mustHours(t, HoursSpec{Holidays: []string{"2026-12-25"}})
	weekdays := mustHours(t, HoursSpec{Days: []string{"mon", "tue", "wed", "thu", "fri"}})
	nightOwl := mustHours(t, HoursSpec{Start: "02:30", End: "05:00"})
	allDayXmas := mustHours(t, HoursSpec{Start: "00:00", End: "24:00", Holidays: []string{"2026-12-25"}})

	const (
		newYork    = "+12125550123"
		losAngeles = "+13105550123"
		northDak   = "+17015550123" // America/Denver and America/North_Dakota/Center
		sydney     = "+61291234567"
		testRange  = "+15550100001"
	)
	cases := []struct {
		name   string
		hours  Hours
		number string
		at     string
		ok     bool
		next   string // "" with !ok: no next time within the horizon
	}{
		// July: New York is UTC-4, Los Angeles UTC-7.
		{"new york 20:59 local", def, newYork, "2026-07-16T00:59:00Z", true, ""},
		{"new york 21:00:00 local, the end is exclusive", def, newYork, "2026-07-16T01:00:00Z", false, "2026-07-16T12:00:00Z"},
		{"new york 21:01 local", def, newYork, "2026-07-16T01:01:00Z", false, "2026-07-16T12:00:00Z"},
		{"los angeles at new york's 21:01 is 18:01", def, losAngeles, "2026-07-16T01:01:00Z", true, ""},
		{"los angeles 07:59 local", def, losAngeles, "2026-07-16T14:59:00Z", false, "2026-07-16T15:00:00Z"},

		// +1 701 may be Mountain or Central: allowed only when both are in
		// the window, so from 08:00 Mountain (09:00 Central) to 21:00
		// Central (20:00 Mountain).
		{"two zones: 08:30 central is 07:30 mountain", def, northDak, "2026-07-16T13:30:00Z", false, "2026-07-16T14:00:00Z"},
		{"two zones: 08:00 mountain", def, northDak, "2026-07-16T14:00:00Z", true, ""},
		{"two zones: 20:59 central", def, northDak, "2026-07-17T01:59:00Z", true, ""},
		{"two zones: 21:00 central is 20:00 mountain", def, northDak, "2026-07-17T02:00:00Z", false, "2026-07-17T14:00:00Z"},

		// Sydney: AEST (UTC+10) in July, AEDT (UTC+11) in January.
		{"sydney 07:59 in winter", def, sydney, "2026-07-15T21:59:00Z", false, "2026-07-15T22:00:00Z"},
		{"sydney 08:00 in winter", def, sydney, "2026-07-15T22:00:00Z", true, ""},
		{"sydney 21:00 in summer", def, sydney, "2026-01-15T10:00:00Z", false, "2026-01-15T21:00:00Z"},
		// Sydney leaves daylight saving on Sunday 2026-04-05 at 03:00 AEDT.
		{"sydney, the day DST ends: 08:00 is UTC+10", def, sydney, "2026-04-04T21:30:00Z", false, "2026-04-04T22:00:00Z"},

		// New York springs forward on 2026-03-08 (08:00 is 12:00Z, not
		// 13:00Z) and falls back on 2026-11-01 (08:00 is 13:00Z).
		{"spring forward: 08:30 EDT", def, newYork, "2026-03-08T12:30:00Z", true, ""},
		{"spring forward: from 01:00 EST", def, newYork, "2026-03-08T06:00:00Z", false, "2026-03-08T12:00:00Z"},
		{"spring forward: a window inside the skipped hour starts when the clock jumps", nightOwl, newYork, "2026-03-08T06:00:00Z", false, "2026-03-08T07:00:00Z"},
		{"fall back: 07:30 EST", def, newYork, "2026-11-01T12:30:00Z", false, "2026-11-01T13:00:00Z"},
		{"fall back: 20:59 EST", def, newYork, "2026-11-02T01:59:00Z", true, ""},
		{"fall back: 21:00 EST", def, newYork, "2026-11-02T02:00:00Z", false, "2026-11-02T13:00:00Z"},

		// Holidays and weekdays are the callee's local dates.
		{"holiday: christmas 10:00 in new york", xmas, newYork, "2026-12-25T15:00:00Z", false, "2026-12-26T13:00:00Z"},
		{"holiday: christmas eve 20:00 in los angeles", xmas, losAngeles, "2026-12-25T04:00:00Z", true, ""},
		{"holiday: already the 25th in sydney", xmas, sydney, "2026-12-24T22:00:00Z", false, "2026-12-25T21:00:00Z"},
		{"saturday with weekday hours", weekdays, newYork, "2026-07-18T15:00:00Z", false, "2026-07-20T12:00:00Z"},

		// A number with no known zone could be anywhere on Earth.
		{"unknown zone, default hours: never", def, testRange, "2026-07-16T15:00:00Z", false, ""},
		{"unknown zone, all-day hours", AllDay(), testRange, "2026-07-16T03:00:00Z", true, ""},
		{"unknown zone, all-day but christmas somewhere on Earth", allDayXmas, testRange, "2026-12-25T12:00:00Z", false, "2026-12-26T12:00:00Z"},
		{"unknown zone, all-day, christmas not yet begun anywhere", allDayXmas, testRange, "2026-12-24T09:59:00Z", true, ""},
		{"not a phone number: unknown zone", def, "+1", "2026-07-16T15:00:00Z", false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			at := utc(c.at)
			ok, next := c.hours.Allowed(c.number, at)
			if ok != c.ok {
				t.Fatalf("Allowed(%s, %s) = %v, want %v (next %s)", c.number, c.at, ok, c.ok, next)
			}
			want := at
			switch {
			case !c.ok && c.next == "":
				want = time.Time{}
			case !c.ok:
				want = utc(c.next)
			}
			if !next.Equal(want) {
				t.Fatalf("next allowed at %s, want %s", next.UTC().Format(time.RFC3339), want.UTC().Format(time.RFC3339))
			}
			if !ok && !next.IsZero() {
				assertEarliest(t, c.hours, c.number, at, next)
			}
		})
	}
}

// assertEarliest checks, minute by minute, that nothing between at and next
// is allowed and that next is: the search found the earliest time.
func assertEarliest(t *testing.T, h Hours, number string, at, next time.Time) {
	t.Helper()
	n, err := Classify(number)
	if err != nil {
		t.Fatal(err)
	}
	zones := n.Zones()
	if zones == nil {
		zones = anywhere
	}
	inAll := func(x time.Time) bool {
		for _, z := range zones {
			if !h.allowedIn(z, x) {
				return false
			}
		}
		return true
	}
	if !inAll(next) {
		t.Fatalf("next allowed %s is not allowed", next)
	}
	for x := at.Truncate(time.Minute); x.Before(next); x = x.Add(time.Minute) {
		if !x.Before(at) && inAll(x) {
			t.Fatalf("%s is allowed, before the reported next %s", x, next)
		}
	}
}

// A toll-free NANP number could ring anywhere from Guam to Newfoundland: the
// window common to every NANP zone is short, and the search finds it.
func TestCallingHoursCountryWideNumber(t *testing.T) {
	at := utc("2026-07-16T15:00:00Z")
	n, err := Classify("+18005550123")
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Zones()) < 10 {
		t.Fatalf("toll-free number has %d zones, want the whole NANP", len(n.Zones()))
	}
	ok, next := DefaultHours().AllowedIn(n.Zones(), at)
	if ok || next.IsZero() || next.Sub(at) > 24*time.Hour {
		t.Fatalf("got %v %s", ok, next)
	}
	assertEarliest(t, DefaultHours(), "+18005550123", at, next)
}

func TestHoursSpecReportsEveryProblem(t *testing.T) {
	_, err := HoursSpec{Start: "8am", End: "25:00", Days: []string{"mon", "funday"}, Holidays: []string{"12/25"}}.Parse()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`start: must be HH:MM, 00:00 to 23:59, got "8am"`, `end: must be HH:MM, 00:00 to 24:00, got "25:00"`,
		`days: "funday" is not one of sun, mon, tue, wed, thu, fri, sat`, `holidays: "12/25" is not a date like 2026-12-25`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if _, err := (HoursSpec{Start: "21:00", End: "08:00"}).Parse(); err == nil || !strings.Contains(err.Error(), "across midnight is not supported") {
		t.Errorf("overnight window: %v", err)
	}
	h, err := HoursSpec{}.Parse()
	if err != nil || h.String() != "08:00-21:00 every day" {
		t.Errorf("empty spec: %v %q", err, h)
	}
	if h, _ := (HoursSpec{Start: "00:00", End: "24:00"}).Parse(); !h.allDay() {
		t.Errorf("00:00-24:00 is not all day: %s", h)
	}
}

// The zero Hours allows nothing, known zone or not.
func TestZeroHoursAllowNothing(t *testing.T) {
	for _, n := range []string{"+12125550123", "+15550100001"} {
		if ok, next := (Hours{}).Allowed(n, utc("2026-07-16T15:00:00Z")); ok || !next.IsZero() {
			t.Errorf("%s: %v %s", n, ok, next)
		}
	}
}
