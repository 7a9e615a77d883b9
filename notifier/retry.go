package notifier

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// retryable says whether an HTTP status is worth another attempt: the
// receiver asked us to come back (408, 429) or failed on its side (5xx).
// Other non-2xx answers are final: a 3xx is a redirect the notifier never
// follows, and a 4xx says the request itself is refused, which a retry
// would not change. 410 is handled before this (it stops the URL).
func retryable(code int) bool { return code == 408 || code == 429 || code >= 500 }

// success says whether the receiver took the event.
func success(code int) bool { return code >= 200 && code < 300 }

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(maxRetryDelay/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// schedule turns the configured steps into retry decisions. Retry topics are
// per distinct delay, not per step: 10h,10h share one topic, and a record
// carries its own attempt number and due time, so a topic of a schedule that
// was changed since keeps being drained correctly.
type schedule struct {
	steps  []time.Duration
	jitter float64
	delays []time.Duration // distinct retry delays, ascending
}

func newSchedule(steps []time.Duration, jitter float64) schedule {
	s := schedule{steps: slices.Clone(steps), jitter: jitter}
	for _, d := range steps[1:] {
		if !slices.Contains(s.delays, d) {
			s.delays = append(s.delays, d)
		}
	}
	slices.Sort(s.delays)
	return s
}

// attempts is the number of attempts an event gets.
func (s schedule) attempts() int { return len(s.steps) }

// next decides the retry after attempt failed (1-based): the delay is the
// schedule's step, or the receiver's Retry-After if longer, capped at the
// longest step; jitter only lengthens it, so Retry-After is always honored
// (up to the cap). The record goes to the topic of the smallest delay that is
// at least that long, where records around it are due at about the same time
// (a record due much later than its neighbours would be held in the buffer,
// not block them, but would take a buffer slot for longer). ok is false when
// the schedule is exhausted.
func (s schedule) next(attempt int, retryAfter time.Duration, rnd func() float64) (delay time.Duration, topic string, ok bool) {
	if attempt >= len(s.steps) || len(s.delays) == 0 {
		return 0, "", false
	}
	d := min(max(s.steps[attempt], retryAfter), s.delays[len(s.delays)-1])
	i, _ := slices.BinarySearch(s.delays, d)
	return d + time.Duration(rnd()*s.jitter*float64(d)), RetryTopic(s.delays[i]), true
}

// RetryTopics maps each retry topic of a schedule to the delay its records
// wait there: kafkax.TopicsConfig.WebhookRetryTopics, from which the topics
// are created. The first step (0s) is the first attempt, not a retry.
func RetryTopics(steps []time.Duration) map[string]time.Duration {
	m := map[string]time.Duration{}
	for i, d := range steps {
		if i > 0 {
			m[RetryTopic(d)] = d
		}
	}
	return m
}

// RetryTopic names the retry topic for a delay: "dialstream.webhooks.retry.5m".
func RetryTopic(d time.Duration) string {
	return schemas.TopicWebhookRetryPrefix + shortDuration(d)
}

// shortDuration writes 5m for 5m0s and 2h for 2h0m0s; topic names allow
// [a-zA-Z0-9._-], which Duration.String meets for whole milliseconds.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
