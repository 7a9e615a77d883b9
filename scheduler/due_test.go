package scheduler

import (
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/schemas"
)

// releaseAll is the release loop's step: pick, release, tell the pacer.
func releaseAll(c *campaign, now time.Time, p *pacer) ([]schemas.CallRequested, time.Time) {
	ks, wake := c.releasable(now, compliance.DefaultHours(), p)
	var out []schemas.CallRequested
	for _, k := range ks {
		out = append(out, c.release(k, now))
		p.released(now)
	}
	return out, wake
}

func contactsOf(reqs []schemas.CallRequested) []string {
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.Campaign.ContactID)
	}
	return ids
}

// With a fixed clock: contacts in New York and Berlin are released only
// inside their own windows; a pause holds releases and resume continues;
// the loop is told when to wake for the next window.
func TestReleaseInsideEachContactsWindow(t *testing.T) {
	cmd := testCampaignCmd(true)
	cmd.Pacing = schemas.Pacing{CallsPerSecond: 10, MaxConcurrent: 10}
	c, _ := applyCreated(nil, cmd)
	c.applyContacts(contactsCmd(t0,
		schemas.Contact{ContactID: "ny", To: "+15550100201", Timezone: "America/New_York"},
		schemas.Contact{ContactID: "berlin", To: "+15550100202", Timezone: "Europe/Berlin"}))
	p := newPacer(cmd.Pacing.CallsPerSecond, cmd.Pacing.MaxConcurrent)

	// Wednesday 2026-12-09 12:00 UTC: 13:00 in Berlin, 07:00 in New York.
	now := time.Date(2026, 12, 9, 12, 0, 0, 0, time.UTC)
	reqs, wake := releaseAll(c, now, &p)
	nyOpens := time.Date(2026, 12, 9, 15, 0, 0, 0, time.UTC) // 10:00 in New York
	if got := contactsOf(reqs); len(got) != 1 || got[0] != "berlin" || !wake.Equal(nyOpens) {
		t.Fatalf("at 12:00 UTC released %v, wake %s; want [berlin], wake %s", got, wake, nyOpens)
	}
	if reqs, _ := releaseAll(c, nyOpens.Add(-time.Second), &p); len(reqs) != 0 {
		t.Fatalf("released %v a second before New York's window", contactsOf(reqs))
	}

	c.applyControl(control(schemas.ActionPause, nyOpens.Add(-time.Minute)))
	if reqs, wake := releaseAll(c, nyOpens.Add(time.Minute), &p); len(reqs) != 0 || !wake.IsZero() {
		t.Fatalf("paused campaign released %v (wake %s)", contactsOf(reqs), wake)
	}
	c.applyControl(control(schemas.ActionResume, nyOpens.Add(2*time.Minute)))
	reqs, _ = releaseAll(c, nyOpens.Add(2*time.Minute), &p)
	if got := contactsOf(reqs); len(got) != 1 || got[0] != "ny" {
		t.Fatalf("after resume released %v, want [ny]", got)
	}
	if reqs, _ := releaseAll(c, nyOpens.Add(time.Hour), &p); len(reqs) != 0 {
		t.Fatalf("released %v again", contactsOf(reqs))
	}
}

// The pacer and max_concurrent bound each step: at 2 calls/s and at most 2
// in progress, one step releases one contact and wakes 500 ms later; the
// third waits for an outcome (no wake), then goes; a busy contact comes
// back at its retry time, inside its window.
func TestReleasePacedAndBounded(t *testing.T) {
	cmd := testCampaignCmd(true)
	cmd.Pacing = schemas.Pacing{CallsPerSecond: 2, MaxConcurrent: 2}
	c, _ := applyCreated(nil, cmd)
	c.applyContacts(contactsCmd(t0,
		schemas.Contact{ContactID: "a", To: "+15550100201", Timezone: "UTC"},
		schemas.Contact{ContactID: "b", To: "+15550100202", Timezone: "UTC"},
		schemas.Contact{ContactID: "c", To: "+15550100203", Timezone: "UTC"}))
	p := newPacer(2, 2)
	now := time.Date(2026, 12, 9, 12, 0, 0, 0, time.UTC) // Wednesday noon UTC
	r1, wake := releaseAll(c, now, &p)
	if len(r1) != 1 || !wake.Equal(now.Add(500*time.Millisecond)) {
		t.Fatalf("first step: %v wake %s", contactsOf(r1), wake)
	}
	if r, _ := releaseAll(c, now.Add(499*time.Millisecond), &p); len(r) != 0 {
		t.Fatal("released inside the pacing interval")
	}
	r2, _ := releaseAll(c, now.Add(500*time.Millisecond), &p)
	if len(r2) != 1 {
		t.Fatalf("second step: %v", contactsOf(r2))
	}
	if r, wake := releaseAll(c, now.Add(5*time.Second), &p); len(r) != 0 || !wake.IsZero() {
		t.Fatalf("released %v past max_concurrent (wake %s)", contactsOf(r), wake)
	}
	c.applyOutcome(callOutcome(r1[0], schemas.OutcomeBusy, now.Add(6*time.Second)))
	r3, _ := releaseAll(c, now.Add(6*time.Second), &p)
	if len(r3) != 1 || r3[0].Campaign.ContactID == r1[0].Campaign.ContactID {
		t.Fatalf("after an outcome: %v", contactsOf(r3))
	}
	c.applyOutcome(callOutcome(r2[0], schemas.OutcomeCompleted, now.Add(7*time.Second)))
	retry := now.Add(6*time.Second + 10*time.Minute)
	if r, wake := releaseAll(c, now.Add(8*time.Second), &p); len(r) != 0 || !wake.Equal(retry) {
		t.Fatalf("busy contact before its retry: %v wake %s, want wake %s", contactsOf(r), wake, retry)
	}
	r4, _ := releaseAll(c, retry, &p)
	if len(r4) != 1 || r4[0].Campaign.ContactID != r1[0].Campaign.ContactID || r4[0].Campaign.Attempt != 2 {
		t.Fatalf("retry: %+v", r4)
	}
}
