package notifier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"

	"go.opentelemetry.io/otel/propagation"

	"github.com/dialstream/dialstream/internal/obs"
)

// userAgent identifies deliveries in receivers' logs.
const userAgent = "Dialstream-Webhooks/1"

// newHTTPClient is the webhook client: the SSRF guard dials, environment
// proxies are ignored (a proxy would connect to the internal address on our
// behalf, after the guard), redirects are never followed, and every attempt
// is bounded by timeout.
func newHTTPClient(g *guard, cfg Config) *http.Client {
	t := &http.Transport{
		Proxy:                  nil,
		DialContext:            g.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    cfg.ConnectTimeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxIdleConns:           cfg.MaxInFlight,
		MaxIdleConnsPerHost:    cfg.MaxInFlightPerHost,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: t,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// attemptResult is what one POST came to.
type attemptResult struct {
	at         time.Time
	duration   time.Duration
	status     int
	err        error // transport error (no status)
	retryAfter time.Duration
	hasRA      bool
	excerpt    string // start of the response body, for the error text
}

// post makes one signed attempt. The response body is read up to maxBody
// bytes (so the connection can often be reused) and never further: an
// endless body costs at most maxBody bytes and the timeout. The request
// carries ctx's span as W3C traceparent/tracestate (outside the signed
// content), so a receiver that traces continues the call's trace.
func post(ctx context.Context, c *http.Client, url, id string, keys []*macKey, body []byte, maxBody int64) attemptResult {
	at := time.Now()
	r := attemptResult{at: at}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	obs.Propagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	sign(req.Header, keys, id, at, body)
	resp, err := c.Do(req)
	if err != nil {
		r.err, r.duration = err, time.Since(at)
		return r
	}
	r.status = resp.StatusCode
	r.retryAfter, r.hasRA = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_ = resp.Body.Close()
	r.duration = time.Since(at)
	r.excerpt = printable(head, 200)
	return r
}

// errorText describes a failed attempt for the delivery log and DLQ headers.
func (r attemptResult) errorText() string {
	if r.err != nil {
		return r.err.Error()
	}
	if success(r.status) {
		return ""
	}
	s := fmt.Sprintf("HTTP %d %s", r.status, http.StatusText(r.status))
	if r.excerpt != "" {
		s += ": " + r.excerpt
	}
	return s
}

// refused returns the SSRF refusal behind a transport error, if that was it.
func (r attemptResult) refused() *RefusedError {
	var re *RefusedError
	if errors.As(r.err, &re) {
		return re
	}
	return nil
}

// printable keeps the first n bytes of a body as one readable line.
func printable(b []byte, n int) string {
	s := strings.ToValidUTF8(string(b[:min(len(b), n)]), "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
