package notifier

import (
	"maps"
	"net/http"
	"testing"
	"time"
)

func TestRetryable(t *testing.T) {
	for code, want := range map[int]bool{
		200: false, 204: false, 301: false, 302: false, 307: false, 308: false,
		400: false, 401: false, 403: false, 404: false, 409: false, 410: false, 422: false,
		408: true, 429: true, 500: true, 502: true, 503: true, 504: true, 599: true,
	} {
		if got := retryable(code); got != want {
			t.Errorf("retryable(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"5", 5 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"99999999999", maxRetryDelay, true},
	}
	for _, c := range cases {
		got, ok := parseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("parseRetryAfter(%q) = %s %v, want %s %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestScheduleNext(t *testing.T) {
	s := newSchedule(DefaultRetrySchedule(), 0.1)
	if s.attempts() != 8 {
		t.Fatalf("attempts %d", s.attempts())
	}
	wantTopics := map[string]time.Duration{"dialstream.webhooks.retry.5s": 5 * time.Second, "dialstream.webhooks.retry.5m": 5 * time.Minute,
		"dialstream.webhooks.retry.30m": 30 * time.Minute, "dialstream.webhooks.retry.2h": 2 * time.Hour,
		"dialstream.webhooks.retry.5h": 5 * time.Hour, "dialstream.webhooks.retry.10h": 10 * time.Hour}
	if got := RetryTopics(DefaultRetrySchedule()); !maps.Equal(got, wantTopics) {
		t.Fatalf("topics %v", got)
	}
	zero := func() float64 { return 0 }
	half := func() float64 { return 0.5 }
	cases := []struct {
		attempt    int
		retryAfter time.Duration
		rnd        func() float64
		delay      time.Duration
		topic      string
		ok         bool
	}{
		{1, 0, zero, 5 * time.Second, "dialstream.webhooks.retry.5s", true},
		{1, 0, half, 5250 * time.Millisecond, "dialstream.webhooks.retry.5s", true},       // +5% jitter
		{1, time.Second, zero, 5 * time.Second, "dialstream.webhooks.retry.5s", true},     // step is longer
		{1, time.Minute, zero, time.Minute, "dialstream.webhooks.retry.5m", true},         // Retry-After is longer
		{2, 0, zero, 5 * time.Minute, "dialstream.webhooks.retry.5m", true},               // second retry
		{6, 0, zero, 10 * time.Hour, "dialstream.webhooks.retry.10h", true},               // 10h,10h share a topic
		{7, 0, zero, 10 * time.Hour, "dialstream.webhooks.retry.10h", true},               //
		{3, 100 * time.Hour, zero, 10 * time.Hour, "dialstream.webhooks.retry.10h", true}, // capped
		{8, 0, zero, 0, "", false},  // exhausted
		{12, 0, zero, 0, "", false}, // from an older, longer schedule
	}
	for _, c := range cases {
		d, topic, ok := s.next(c.attempt, c.retryAfter, c.rnd)
		if d != c.delay || topic != c.topic || ok != c.ok {
			t.Errorf("next(%d, %s) = %s %s %v, want %s %s %v", c.attempt, c.retryAfter, d, topic, ok, c.delay, c.topic, c.ok)
		}
	}
	if _, _, ok := newSchedule([]time.Duration{0}, 0).next(1, 0, zero); ok {
		t.Error("a one-step schedule retried")
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 100 * time.Millisecond: "100ms", 5 * time.Second: "5s", 90 * time.Second: "1m30s",
		5 * time.Minute: "5m", 2 * time.Hour: "2h", 90 * time.Minute: "1h30m", 1500 * time.Millisecond: "1.5s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %s, want %s", d, got, want)
		}
	}
}
