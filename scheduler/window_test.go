package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/schemas"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustHours(t *testing.T, s compliance.HoursSpec) compliance.Hours {
	t.Helper()
	h, err := s.Parse()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Mon-Fri 10:00-19:00 in the callee's zone, under the default workspace
// hours (08:00-21:00): a contact in New York and one in Berlin are released
// only inside their own local windows, and a Friday evening waits for Monday.
func TestNextReleaseInTheCalleesZone(t *testing.T) {
	ws, err := parseWindows([]schemas.Window{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "10:00", End: "19:00"}})
	if err != nil {
		t.Fatal(err)
	}
	ny, berlin := mustZone(t, "America/New_York"), mustZone(t, "Europe/Berlin")
	hours := compliance.DefaultHours()
	// Wednesday 2026-12-02 12:00 UTC: 07:00 in New York, 13:00 in Berlin.
	at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		zone *time.Location
		at   time.Time
		want time.Time
	}{
		{"berlin inside", berlin, at, at},
		{"new york before its window", ny, at, time.Date(2026, 12, 2, 10, 0, 0, 0, ny)},
		{"berlin after its window", berlin, time.Date(2026, 12, 2, 19, 0, 0, 0, berlin), time.Date(2026, 12, 3, 10, 0, 0, 0, berlin)},
		{"new york friday evening waits for monday", ny, time.Date(2026, 12, 4, 19, 30, 0, 0, ny), time.Date(2026, 12, 7, 10, 0, 0, 0, ny)},
		{"last minute is inside", ny, time.Date(2026, 12, 2, 18, 59, 0, 0, ny), time.Date(2026, 12, 2, 18, 59, 0, 0, ny)},
	}
	for _, c := range cases {
		got := ws.nextRelease(hours, []*time.Location{c.zone}, c.at)
		if !got.Equal(c.want) {
			t.Errorf("%s: next release %s, want %s", c.name, got.In(c.zone), c.want.In(c.zone))
		}
	}
}

// The workspace's calling hours narrow the campaign's windows: a campaign
// window of 07:00-12:00 under workspace hours of 09:00-17:00 opens at 09:00;
// two campaign windows take the earlier one that the hours allow.
func TestNextReleaseIntersectsTheWorkspaceHours(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	ws, err := parseWindows([]schemas.Window{
		{Days: []string{"sat"}, Start: "07:00", End: "12:00"},
		{Days: []string{"mon"}, Start: "18:00", End: "20:00"},
	})
	if err != nil {
		t.Fatal(err)
	}
	hours := mustHours(t, compliance.HoursSpec{Start: "09:00", End: "17:00"})
	// Friday 2026-12-04 20:00 New York.
	got := ws.nextRelease(hours, []*time.Location{ny}, time.Date(2026, 12, 4, 20, 0, 0, 0, ny))
	if want := time.Date(2026, 12, 5, 9, 0, 0, 0, ny); !got.Equal(want) {
		t.Fatalf("next release %s, want %s", got.In(ny), want)
	}
	// Saturday 12:00: the Monday window (18:00-20:00) never meets the
	// hours (until 17:00), so the next is the following Saturday 09:00.
	got = ws.nextRelease(hours, []*time.Location{ny}, time.Date(2026, 12, 5, 12, 0, 0, 0, ny))
	if want := time.Date(2026, 12, 12, 9, 0, 0, 0, ny); !got.Equal(want) {
		t.Fatalf("next release %s, want %s", got.In(ny), want)
	}
	// Windows that never meet the hours: no release at all.
	never, _ := parseWindows([]schemas.Window{{Days: []string{"mon"}, Start: "18:00", End: "20:00"}})
	if got := never.nextRelease(hours, []*time.Location{ny}, time.Date(2026, 12, 5, 12, 0, 0, 0, ny)); !got.IsZero() {
		t.Fatalf("windows outside the hours released at %s", got.In(ny))
	}
}

// A number in two zones must fit one window in both at once.
func TestNextReleaseEveryZoneOfTheNumber(t *testing.T) {
	ny, la := mustZone(t, "America/New_York"), mustZone(t, "America/Los_Angeles")
	ws, _ := parseWindows([]schemas.Window{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "10:00", End: "19:00"}})
	// Wednesday 11:00 New York is 08:00 Los Angeles: wait for 10:00 LA.
	got := ws.nextRelease(compliance.DefaultHours(), []*time.Location{ny, la}, time.Date(2026, 12, 2, 11, 0, 0, 0, ny))
	if want := time.Date(2026, 12, 2, 10, 0, 0, 0, la); !got.Equal(want) {
		t.Fatalf("next release %s, want %s", got.In(la), want)
	}
}

func TestParseWindowsNamesEachProblem(t *testing.T) {
	_, err := parseWindows([]schemas.Window{
		{Days: []string{"mon"}, Start: "10:00", End: "19:00"},
		{Days: []string{"monday"}, Start: "10:00", End: "09:00"},
		{Days: nil, Start: "10:00", End: "11:00"},
	})
	if err == nil {
		t.Fatal("bad windows accepted")
	}
	for _, want := range []string{"schedule.windows[1]", `"monday"`, "must be after start", "schedule.windows[2].days"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %s", err, want)
		}
	}
	if _, err := parseWindows(nil); err == nil {
		t.Fatal("no windows accepted")
	}
}
