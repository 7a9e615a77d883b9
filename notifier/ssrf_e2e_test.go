package notifier

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// End to end through the notifier with loopback NOT allow-listed: every
// internal target is refused before any dial (the recording dialer sees
// none of them and the loopback receiver gets nothing), each refusal is a
// final failure in the DLQ with the reason and is counted. The only dial is
// the public name, which the test routes to a loopback server that answers
// with a redirect to the internal receiver, and the redirect is not
// followed. No packet leaves loopback: the public address is never really
// dialed.
func TestSSRFRefusedEndToEnd(t *testing.T) {
	internal := newReceiver(t, nil)
	redirector := newReceiver(t, func(_ int, _ *http.Request, w http.ResponseWriter) int {
		w.Header().Set("Location", internal.URL+"/internal")
		return http.StatusFound
	})
	port := func(u string) string { p, _ := url.Parse(u); return p.Port() }
	ip := port(internal.URL)

	const public = "93.184.215.14" // documentation-free public address; never really dialed
	rec := &dialRecorder{routes: map[string]string{public + ":80": redirector.Listener.Addr().String()}}
	res := mapResolver{
		"loopback.test": {"127.0.0.1"},
		"rebind.test":   {public, "10.0.0.5"},
		"public.test":   {public},
	}
	e := newEnv(t, func(c *Config) {
		c.AllowCIDRs = nil
		c.Resolver = res
		c.Dial = rec.dial
	})

	refused := map[string]string{
		"http://127.0.0.1:" + ip + "/":             rangeLoopback,
		"http://[::1]:" + ip + "/":                 rangeLoopback,
		"http://[::ffff:127.0.0.1]:" + ip + "/":    rangeLoopback,
		"http://0x7f000001:" + ip + "/":            rangeLoopback,
		"http://10.0.0.1/":                         rangePrivate,
		"http://169.254.169.254/latest/meta-data/": rangeMetadata,
		"http://100.64.0.1/":                       rangeCGNAT,
		"http://loopback.test:" + ip + "/":         rangeLoopback,
		"http://rebind.test/":                      rangePrivate,
	}
	calls := map[string]string{}
	var evs []schemas.CallEvent
	for u := range refused {
		c := callID()
		calls[c] = u
		evs = append(evs, event(c, "ws_a", 1, schemas.StatusQueued, u))
	}
	redirectCall := callID()
	evs = append(evs, event(redirectCall, "ws_a", 1, schemas.StatusQueued, "http://public.test/"))
	t0 := time.Now()
	e.emit(evs...)
	t.Logf("emit took %s", time.Since(t0))

	dlq := e.waitKeys(schemas.TopicWebhookDLQ, append(slices.Collect(maps.Keys(calls)), redirectCall), 20*time.Second)
	for call, rs := range dlq {
		r := rs[0]
		if call == redirectCall {
			if header(r, kafkax.HeaderDLQErrorClass) != string(DLQFinalStatus) || header(r, kafkax.HeaderDLQLastStatusCode) != "302" {
				t.Errorf("redirect: %v", r.Headers)
			}
			continue
		}
		if got := header(r, kafkax.HeaderDLQErrorClass); got != string(DLQSSRFRefused) {
			t.Errorf("%s: DLQ class %s, want ssrf_refused (%s)", calls[call], got, header(r, kafkax.HeaderDLQError))
		}
		t.Logf("%-45s -> %s", calls[call], header(r, kafkax.HeaderDLQError))
	}
	if n := internal.count(); n != 0 {
		t.Fatalf("the internal receiver was reached %d times", n)
	}
	if n := redirector.count(); n != 1 {
		t.Fatalf("redirector reached %d times, want 1", n)
	}
	if d := rec.recorded(); !slices.Equal(d, []string{public + ":80"}) {
		t.Fatalf("dials %v, want only the public address", d)
	}
	var total float64
	for _, r := range refusedRanges {
		total += e.metric("dialstream_notifier_ssrf_refusals_total", "range", r)
	}
	if total != float64(len(refused)) {
		t.Fatalf("ssrf refusals counted %v, want %d", total, len(refused))
	}
	if got := e.metric("dialstream_notifier_ssrf_refusals_total", "range", "loopback"); got != 5 {
		t.Errorf("loopback refusals %v, want 5", got)
	}
	// The delivery log says why, for the call's delivery list.
	for call, u := range calls {
		as := e.attempts(call)
		if len(as) != 1 || as[0].Result != schemas.WebhookSSRFRefused || as[0].Error == "" {
			t.Errorf("%s: delivery log %+v", u, as)
		}
	}
}
