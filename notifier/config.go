package notifier

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
)

// Defaults of the NOTIFIER_* variables (the KAFKA_* ones are kafkax's).
const (
	DefaultHTTPAddr           = "127.0.0.1:8082"
	DefaultGroupID            = "dialstream-notifier"
	DefaultRetryJitter        = 0.1
	DefaultConnectTimeout     = 5 * time.Second
	DefaultTimeout            = 15 * time.Second
	DefaultMaxResponseBytes   = 64 << 10
	DefaultMaxInFlight        = 256
	DefaultMaxInFlightPerHost = 16
	DefaultPartitionBuffer    = 1024
)

// DefaultRetrySchedule is the schedule of docs/architecture.md, Webhooks
// out: the first attempt when the event arrives, then 5s, 5m, 30m, 2h, 5h,
// 10h and 10h after each failure.
func DefaultRetrySchedule() []time.Duration {
	return []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
}

// Config is everything the notifier needs. LoadConfig fills it from the
// environment; tests build it in code, and zero values take the defaults
// (withDefaults). Each field names its variable and default.
type Config struct {
	// HTTPAddr serves /healthz, /readyz and /metrics (internal/ops;
	// NOTIFIER_HTTP_ADDR, default 127.0.0.1:8082).
	HTTPAddr string
	// Listener, when set, is served instead of binding HTTPAddr (tests).
	// Code only.
	Listener net.Listener
	// Routes are extra handlers on that server, by ServeMux pattern
	// (ops.Server.Routes), for pages a caller adds beside the ops endpoints.
	// Code only.
	Routes map[string]http.Handler
	// GroupID is the consumer group (NOTIFIER_GROUP_ID, default
	// dialstream-notifier). Every replica of one deployment shares it;
	// partitions are split between them.
	GroupID string

	// RetrySchedule is the delay before each attempt (NOTIFIER_RETRY_SCHEDULE,
	// comma-separated, default 0s,5s,5m,30m,2h,5h,10h,10h:
	// DefaultRetrySchedule). Its length is the number of attempts; the first
	// entry must be 0s (the first attempt is made when the event arrives).
	// Each distinct later delay gets its own retry topic (RetryTopics).
	RetrySchedule []time.Duration
	// RetryJitter lengthens each retry delay by a random fraction in
	// [0, RetryJitter) so a receiver that comes back is not hit by every
	// retry at the same instant (NOTIFIER_RETRY_JITTER, 0..1, default 0.1).
	RetryJitter float64

	// ConnectTimeout bounds DNS plus TCP connect (NOTIFIER_CONNECT_TIMEOUT,
	// default 5s).
	ConnectTimeout time.Duration
	// Timeout bounds a whole attempt, reading the response included
	// (NOTIFIER_TIMEOUT, default 15s).
	Timeout time.Duration
	// MaxResponseBytes caps the response body bytes read
	// (NOTIFIER_MAX_RESPONSE_BYTES, default 65536); the rest is never read.
	MaxResponseBytes int64
	// MaxInFlight caps concurrent deliveries (NOTIFIER_MAX_IN_FLIGHT,
	// default 256).
	MaxInFlight int
	// MaxInFlightPerHost caps them per callback host
	// (NOTIFIER_MAX_IN_FLIGHT_PER_HOST, default 16), so a hanging receiver
	// can hold at most that many slots and the others keep flowing.
	MaxInFlightPerHost int
	// PartitionBuffer caps the records held per assigned partition (waiting
	// for their due time, in flight, or finished but not yet committable);
	// at the cap the partition is paused until half of it drains
	// (NOTIFIER_PARTITION_BUFFER, default 1024). A poll takes at most
	// PartitionBuffer records, so memory is bounded by assigned partitions x
	// 2 x PartitionBuffer x record size, plus franz-go's fetch buffer (16
	// MiB per fetch, 1 MiB per partition).
	PartitionBuffer int

	// AllowCIDRs exempts networks from the SSRF guard (NOTIFIER_ALLOW_CIDRS,
	// comma-separated CIDRs or addresses, default none). Dev mode and tests
	// allow-list loopback; production normally leaves it empty.
	AllowCIDRs []netip.Prefix

	// RegistryPath is the workspace registry file (DIALSTREAM_REGISTRY,
	// required unless Registry is set). The notifier reads each workspace's
	// webhook secrets from it.
	RegistryPath string
	// Registry, when set, is used instead of loading RegistryPath (set by
	// cmd/dialstream in dev mode, and by tests).
	Registry *registry.Registry

	// Kafka is the shared KAFKA_* configuration (kafkax.LoadConfig; its
	// defaults are kafkax's, client id dialstream-notifier). KAFKA_BROKERS
	// is required.
	Kafka kafkax.Config

	// Logger, Metrics and TracerProvider are set in code by cmd/dialstream.
	// Nil Logger: discard. Nil Metrics: a registry of the notifier's own;
	// metrics are registered on it, so register one Run per registry.
	Logger  *slog.Logger
	Metrics *prometheus.Registry
	// TracerProvider makes the notifier's spans: one per delivery attempt,
	// continuing the event record's traceparent (the call's trace), whose
	// context goes to the receiver in the traceparent header. Nil: otel's
	// global provider, which cmd/dialstream sets from the OTEL_* variables.
	TracerProvider trace.TracerProvider

	// Resolver and Dial are test hooks for the SSRF guard: the resolver turns
	// a callback host into addresses, Dial connects to one checked address.
	// Nil means the system resolver and a net.Dialer. Code only.
	Resolver Resolver
	Dial     DialFunc
}

// LoadConfig reads the notifier's variables and the shared KAFKA_* ones.
// Problems are recorded on l; call l.Err() once everything is loaded.
func LoadConfig(l *envconfig.Loader) Config {
	c := Config{
		HTTPAddr:           l.String("NOTIFIER_HTTP_ADDR", DefaultHTTPAddr),
		GroupID:            l.String("NOTIFIER_GROUP_ID", DefaultGroupID),
		RetrySchedule:      l.Durations("NOTIFIER_RETRY_SCHEDULE", DefaultRetrySchedule()),
		RetryJitter:        l.Float("NOTIFIER_RETRY_JITTER", DefaultRetryJitter, 0, 1),
		ConnectTimeout:     l.Duration("NOTIFIER_CONNECT_TIMEOUT", DefaultConnectTimeout, 10*time.Millisecond, time.Minute),
		Timeout:            l.Duration("NOTIFIER_TIMEOUT", DefaultTimeout, 10*time.Millisecond, 5*time.Minute),
		MaxResponseBytes:   int64(l.Int("NOTIFIER_MAX_RESPONSE_BYTES", DefaultMaxResponseBytes, 1, 16<<20)),
		MaxInFlight:        l.Int("NOTIFIER_MAX_IN_FLIGHT", DefaultMaxInFlight, 1, 100_000),
		MaxInFlightPerHost: l.Int("NOTIFIER_MAX_IN_FLIGHT_PER_HOST", DefaultMaxInFlightPerHost, 1, 100_000),
		PartitionBuffer:    l.Int("NOTIFIER_PARTITION_BUFFER", DefaultPartitionBuffer, 1, 1_000_000),
		RegistryPath:       l.String("DIALSTREAM_REGISTRY", ""),
		Kafka:              kafkax.LoadConfig(l, "notifier"),
	}
	for _, s := range l.List("NOTIFIER_ALLOW_CIDRS", nil) {
		p, err := parsePrefix(s)
		if err != nil {
			l.Fail("NOTIFIER_ALLOW_CIDRS", "%q is not a CIDR or an IP address", s)
			continue
		}
		c.AllowCIDRs = append(c.AllowCIDRs, p)
	}
	if err := validateSchedule(c.RetrySchedule); err != nil {
		l.Fail("NOTIFIER_RETRY_SCHEDULE", "%v", err)
	}
	if c.RegistryPath != "" {
		if _, err := os.Stat(c.RegistryPath); err != nil {
			l.Fail("DIALSTREAM_REGISTRY", "%v", err)
		}
	}
	return c
}

// parsePrefix reads "10.0.0.0/8" or a bare address ("127.0.0.1" = /32).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// maxRetryDelay bounds one step: records wait in retry topics, whose retention
// must outlast the delay.
const maxRetryDelay = 7 * 24 * time.Hour

func validateSchedule(s []time.Duration) error {
	switch {
	case len(s) == 0:
		return errors.New("at least one step is required")
	case len(s) > 50:
		return fmt.Errorf("at most 50 steps, got %d", len(s))
	case s[0] != 0:
		return fmt.Errorf("the first step must be 0s (the first attempt is made when the event arrives), got %s", s[0])
	}
	for _, d := range s {
		if d < 0 || d > maxRetryDelay {
			return fmt.Errorf("steps must be between 0s and %s, got %s", maxRetryDelay, d)
		}
		if d%time.Millisecond != 0 {
			return fmt.Errorf("steps must be whole milliseconds (they name the retry topics), got %s", d)
		}
	}
	return nil
}

// withDefaults fills the zero values of a Config built in code.
func (c Config) withDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.RetrySchedule == nil {
		c.RetrySchedule = DefaultRetrySchedule()
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxInFlightPerHost == 0 {
		c.MaxInFlightPerHost = DefaultMaxInFlightPerHost
	}
	if c.PartitionBuffer == 0 {
		c.PartitionBuffer = DefaultPartitionBuffer
	}
	c.Kafka = c.Kafka.WithDefaults("notifier")
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = obs.NewRegistry()
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	return c
}

// Validate reports every problem of a Config built in code, all at once;
// Run calls it after withDefaults.
func (c Config) Validate() error {
	// kafkax.Config.Validate records on a Loader; its problems join ours.
	kafka := envconfig.FromMap(nil)
	c.Kafka.Validate(kafka)
	var p envconfig.Problems
	if c.Registry == nil && c.RegistryPath == "" {
		p.Add("DIALSTREAM_REGISTRY", "required (path of the workspace/agent registry file)")
	}
	if err := validateSchedule(c.RetrySchedule); err != nil {
		p.Add("NOTIFIER_RETRY_SCHEDULE", "%v", err)
	}
	if c.RetryJitter < 0 || c.RetryJitter > 1 {
		p.Add("NOTIFIER_RETRY_JITTER", "must be between 0 and 1, got %g", c.RetryJitter)
	}
	if c.ConnectTimeout < 0 || c.Timeout < 0 {
		p.Add("NOTIFIER_TIMEOUT, NOTIFIER_CONNECT_TIMEOUT", "must be positive")
	}
	if c.MaxResponseBytes < 0 {
		p.Add("NOTIFIER_MAX_RESPONSE_BYTES", "must be >= 0, got %d", c.MaxResponseBytes)
	}
	if c.MaxInFlight < 1 {
		p.Add("NOTIFIER_MAX_IN_FLIGHT", "must be >= 1, got %d", c.MaxInFlight)
	}
	if c.MaxInFlightPerHost < 1 {
		p.Add("NOTIFIER_MAX_IN_FLIGHT_PER_HOST", "must be >= 1, got %d", c.MaxInFlightPerHost)
	}
	if c.PartitionBuffer < 1 {
		p.Add("NOTIFIER_PARTITION_BUFFER", "must be >= 1, got %d", c.PartitionBuffer)
	}
	return errors.Join(p.Err(), kafka.Err())
}
