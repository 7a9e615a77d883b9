package ingest

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Overload: past Config.MaxInFlight requests at once, the API answers 503
// with Retry-After at once, before authentication, parsing or Kafka.
//
// Without it, more load than the replica can serve queues up in the HTTP
// server: every request waits longer, memory grows with the queue, and
// clients time out on requests that may still be written, which is the
// worst answer for a call (the client cannot tell whether it was placed).
// A fast 503 says "not written, retry", and a load balancer or the client's
// retry (with an Idempotency-Key) moves the call elsewhere or later.
// Weighed and not taken: queueing up to a deadline before refusing. It
// smooths a burst, but under sustained overload it only adds the deadline
// to every answer.

const reasonOverloaded reason = "overloaded"

// limitInFlight is the middleware of every API route (not the ops ones:
// health and metrics must answer most of all when the replica is busy).
func (h *handler) limitInFlight(c *gin.Context) {
	select {
	case h.inFlight <- struct{}{}:
	default:
		h.fail(c, h.overloaded())
		return
	}
	defer func() { <-h.inFlight }()
	c.Next()
}

// limitInFlightAtOpen is limitInFlight for the event stream: a replica at
// its limit refuses a new stream, but an open stream does not hold a token.
// Held, a few hundred idle streams would refuse every call.
func (h *handler) limitInFlightAtOpen(c *gin.Context) {
	select {
	case h.inFlight <- struct{}{}:
		<-h.inFlight
	default:
		h.fail(c, h.overloaded())
	}
}

func (h *handler) overloaded() *apiError {
	return &apiError{code: http.StatusServiceUnavailable, reason: reasonOverloaded, retryAfter: 1,
		message: fmt.Sprintf("ingest is serving its limit of %d requests at once; retry after 1 s (with the same Idempotency-Key, a retried call is one call)", cap(h.inFlight))}
}
