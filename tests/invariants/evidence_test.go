package invariants

import (
	"slices"
	"testing"
	"time"
)

// In healthy(): A is on partition 0, written at 0..4 s (dialing at 1,
// answered at 3, ended at 4), dialed at 1.1; B on partition 1, written at
// 0.5..2.5 (ended at 2.5), dialed at 1.6.

func TestDialsInFlight(t *testing.T) {
	o := healthy()
	cases := []struct {
		name  string
		parts []int32
		at    float64
		want  []string
	}{
		{"A ringing, B not dialed yet", []int32{0, 1}, 1.5, []string{callA}},
		{"both dials running, oldest first", []int32{0, 1}, 2, []string{callA, callB}},
		{"only the partitions asked about", []int32{1}, 2, []string{callB}},
		{"A answered, B ended", []int32{0, 1}, 3.5, nil},
		{"before any dial", []int32{0, 1}, 1, nil},
	}
	for _, tc := range cases {
		var got []string
		for _, f := range DialsInFlight(o, tc.parts, at(tc.at)) {
			got = append(got, f.CallID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: DialsInFlight = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLiveAcross(t *testing.T) {
	o := healthy()
	cases := []struct {
		name     string
		parts    []int32
		from, to float64
		want     []string
	}{
		{"both live through [1, 2]", []int32{0, 1}, 1, 2, []string{callA, callB}},
		{"B ended inside [1, 3]", []int32{0, 1}, 1, 3, []string{callA}},
		{"nothing started before 0", []int32{0, 1}, 0, 1, nil},
		{"other partitions", []int32{5}, 1, 2, nil},
	}
	for _, tc := range cases {
		if got := LiveAcross(o, tc.parts, at(tc.from), at(tc.to)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: LiveAcross = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLiveDuring(t *testing.T) {
	o := healthy()
	cases := []struct {
		name     string
		parts    []int32
		from, to float64
		want     []string
	}{
		{"A before B was written", []int32{0, 1}, 0, 0.2, []string{callA}},
		{"both at 2", []int32{0, 1}, 2, 2, []string{callA, callB}},
		{"B ended at 2.5", []int32{0, 1}, 3, 5, []string{callA}},
		{"after both ended", []int32{0, 1}, 4.5, 6, nil},
		{"other partitions", []int32{5}, 0, 9, nil},
	}
	for _, tc := range cases {
		if got := LiveDuring(o, tc.parts, at(tc.from), at(tc.to)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: LiveDuring = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDialedAfter(t *testing.T) {
	o := healthy()
	cases := []struct {
		name          string
		from, to, bck float64
		want          []string
	}{
		{"B claimed at 1.5, dialed at 1.6", 0, 2, 1.5, []string{callB}},
		{"A claimed at 1, dialed at 1.1", 0, 1.2, 1, []string{callA}},
		{"both dialed before 2", 0, 2, 2, nil},
		{"claims outside the window", 2, 5, 0, nil},
	}
	for _, tc := range cases {
		if got := DialedAfter(o, at(tc.from), at(tc.to), at(tc.bck)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: DialedAfter = %v, want %v", tc.name, got, tc.want)
		}
	}
	dropDial(&o, "room-b")
	if got := DialedAfter(o, at(0), at(2), at(1.5)); got != nil {
		t.Errorf("a call never dialed: DialedAfter = %v, want none", got)
	}
}

func TestDeliveryDelays(t *testing.T) {
	o := healthy()
	// A's ringing event (written at 2 s) reached the receiver only at 9 s.
	for i := range o.Deliveries {
		if o.Deliveries[i].WebhookID == callA+"-3" {
			o.Deliveries[i].ReceivedAt = at(9)
		}
	}
	o.Deliveries = slices.DeleteFunc(o.Deliveries, func(d Delivery) bool { return d.WebhookID == callA+"-5" })
	got := DeliveryDelays(o, []int32{0}, at(2), at(10))
	if len(got) != 3 || got[0].CEID != callA+"-3" || got[0].Waited != 7*time.Second ||
		got[1].Waited != 50*time.Millisecond || got[2].CEID != callA+"-5" || got[2].Waited != -1 {
		t.Fatalf("DeliveryDelays = %+v", got)
	}
}

func TestRetriedDeliveries(t *testing.T) {
	o := healthy()
	if r, f := RetriedDeliveries(o); r != 1 || f != 0 {
		t.Fatalf("healthy: redelivered %d, after failure %d; want 1, 0", r, f)
	}
	failed := o.Deliveries[0]
	failed.AnsweredWith = 503
	o.Deliveries = append([]Delivery{failed}, o.Deliveries...)
	if r, f := RetriedDeliveries(o); r != 2 || f != 1 {
		t.Fatalf("one retried: redelivered %d, after failure %d; want 2, 1", r, f)
	}
}
