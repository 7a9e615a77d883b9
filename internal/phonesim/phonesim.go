// Package phonesim is the phone network simulator ("dialstream phonesim"): a
// SIP service that attaches to livekit-server's psrpc Redis bus, the way
// livekit/sip does, and plays the callee of every outbound call.
//
// livekit-server hands each CreateSIPParticipant to whichever SIP service is
// registered on the bus; the simulator answers it by joining the room as the
// SIP participant (kind SIP, sip.* attributes) and following the script the
// dialed number selects (see ScriptFor). So the dialer, its webhooks and its
// outcome mapping run unchanged against a real livekit-server, with no
// carrier, no SIP trunk and no phone.
//
// The simulator follows livekit/sip where the difference is visible to a
// caller: it joins the room before the callee answers (participant_joined
// fires while sip.callStatus is "dialing"/"ringing"), leaves the room on a
// failed call with the disconnect reason livekit/sip uses, with
// WaitUntilAnswered unset returns as soon as the participant exists, and
// takes TransferSIPParticipant (a SIP REFER) for an answered call, leaving
// the room as the call moves to the target.
//
// For the agent in the room it is the other end of the line: some scripts
// talk to the agent (callee.go), and every call records what the callee
// received from it, the greeting text, the audio packets and how soon the
// first one came after the answer (heard.go), which GET /dials shows.
package phonesim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/livekit/protocol/rpc"
	"github.com/livekit/psrpc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/dialstream/dialstream/internal/envconfig"
)

const (
	DefaultRingDuration = 1 * time.Second
	DefaultTalkDuration = 3 * time.Second
	// DefaultDialLog is how many dials the simulator remembers for GET
	// /dials. The log is what tests count dials with, so it must hold a
	// whole test run; it must also not grow for as long as `make run`
	// stays up (a soak at 5 calls/s dials 18,000 times an hour).
	DefaultDialLog = 100_000
	// DefaultRingingTimeout applies when a request carries none. (The SDK
	// always sets one when WaitUntilAnswered is true.)
	DefaultRingingTimeout = 30 * time.Second
)

// Config configures the simulator. Run and Start validate it.
type Config struct {
	// RedisAddr is the Redis livekit-server uses; the SIP RPCs travel there.
	RedisAddr string
	// LiveKitURL, APIKey and APISecret let the simulator mint its own join
	// tokens: livekit-server sends the request without token or URL.
	LiveKitURL, APIKey, APISecret string
	// HTTPAddr serves GET /dials, GET /healthz (and GET /metrics when
	// Registerer is also a Gatherer). Empty serves nothing; "127.0.0.1:0"
	// picks a port, see Sim.HTTPAddr.
	HTTPAddr string
	// RingDuration is how long an answering callee rings; TalkDuration how
	// long it talks before hanging up. Zero means 1s and 3s.
	RingDuration, TalkDuration time.Duration
	// DialLog bounds the dials kept for DialLog, Dials and GET /dials; past
	// it the oldest is forgotten. Zero means DefaultDialLog.
	DialLog int
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registerer receives dialstream_phonesim_* metrics; nil means a private
	// registry nobody reads.
	Registerer prometheus.Registerer
}

// LoadConfig reads the config from the environment: PHONESIM_REDIS_ADDR,
// LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, PHONESIM_HTTP_ADDR
// (default 127.0.0.1:7890), PHONESIM_RING_DURATION, PHONESIM_TALK_DURATION
// (Go durations), PHONESIM_DIAL_LOG (dials remembered, default 100000).
// Problems are recorded in l; Logger and Registerer are the
// caller's to set.
func LoadConfig(l *envconfig.Loader) Config {
	return Config{
		RedisAddr:    l.Required("PHONESIM_REDIS_ADDR"),
		LiveKitURL:   l.Required("LIVEKIT_URL"),
		APIKey:       l.Required("LIVEKIT_API_KEY"),
		APISecret:    l.Required("LIVEKIT_API_SECRET"),
		HTTPAddr:     l.String("PHONESIM_HTTP_ADDR", "127.0.0.1:7890"),
		RingDuration: l.Duration("PHONESIM_RING_DURATION", DefaultRingDuration, 0, time.Hour),
		TalkDuration: l.Duration("PHONESIM_TALK_DURATION", DefaultTalkDuration, 0, 24*time.Hour),
		DialLog:      l.Int("PHONESIM_DIAL_LOG", DefaultDialLog, 1, 10_000_000),
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	required := func(name, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: required", name))
		}
	}
	required("PHONESIM_REDIS_ADDR", c.RedisAddr)
	required("LIVEKIT_URL", c.LiveKitURL)
	required("LIVEKIT_API_KEY", c.APIKey)
	required("LIVEKIT_API_SECRET", c.APISecret)
	if c.RingDuration < 0 {
		errs = append(errs, fmt.Errorf("PHONESIM_RING_DURATION: must be >= 0, got %s", c.RingDuration))
	}
	if c.TalkDuration < 0 {
		errs = append(errs, fmt.Errorf("PHONESIM_TALK_DURATION: must be >= 0, got %s", c.TalkDuration))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.RingDuration == 0 {
		c.RingDuration = DefaultRingDuration
	}
	if c.TalkDuration == 0 {
		c.TalkDuration = DefaultTalkDuration
	}
	if c.DialLog == 0 {
		c.DialLog = DefaultDialLog
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}

// Run serves until ctx ends, then hangs up every call and returns. It leaves
// the LiveKit SDK's global logger alone; see NewSDKLogger.
func Run(ctx context.Context, cfg Config) error {
	s, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err = <-s.httpErr:
		err = fmt.Errorf("phonesim: http: %w", err)
	}
	return errors.Join(err, s.Close())
}

// Sim is a running simulator.
type Sim struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	rc  redis.UniversalClient
	srv rpc.SIPInternalServer

	// ctx is the parent of every call; Close cancels it so ringing phones
	// stop and connected calls hang up.
	ctx    context.Context
	cancel context.CancelFunc
	calls  sync.WaitGroup

	mu    sync.Mutex
	dials []*Dial
	// answered maps the SIP call id of each answered call in progress to
	// it, for TransferSIPParticipant.
	answered map[string]*call

	httpSrv  *http.Server
	httpAddr string
	httpErr  chan error

	closeOnce sync.Once
	closeErr  error
}

var _ rpc.SIPInternalServerImpl = (*Sim)(nil)

// Start connects to Redis, registers on the SIP bus and starts the HTTP
// endpoint. ctx bounds start-up only; the simulator runs until Close.
func Start(ctx context.Context, cfg Config) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("phonesim: invalid config: %w", err)
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("phonesim: metrics: %w", err)
	}

	rc := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr})
	if err := rc.Ping(ctx).Err(); err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("phonesim: redis %s: %w", cfg.RedisAddr, err)
	}

	s := &Sim{cfg: cfg, log: cfg.Logger, metrics: m, rc: rc, httpErr: make(chan error, 1), answered: map[string]*call{}}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))

	srv, err := rpc.NewSIPInternalServer(s, psrpc.NewRedisMessageBus(rc))
	if err != nil {
		s.cancel()
		_ = rc.Close()
		return nil, fmt.Errorf("phonesim: psrpc server: %w", err)
	}
	// livekit-server publishes CreateSIPParticipant on the empty topic.
	if err := srv.RegisterCreateSIPParticipantTopic(""); err != nil {
		srv.Kill()
		s.cancel()
		_ = rc.Close()
		return nil, fmt.Errorf("phonesim: register on sip bus: %w", err)
	}
	s.srv = srv

	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("phonesim: listen %s: %w", cfg.HTTPAddr, err)
		}
		s.httpAddr = ln.Addr().String()
		s.httpSrv = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.httpErr <- err
			}
		}()
	}
	s.log.Info("phonesim ready", "redis", cfg.RedisAddr, "livekit", cfg.LiveKitURL, "http", s.httpAddr)
	return s, nil
}

// HTTPAddr is the address the HTTP endpoint listens on ("" when disabled).
func (s *Sim) HTTPAddr() string { return s.httpAddr }

// Close stops taking calls, hangs up the ones in progress (leaving their
// rooms), and waits for them. Safe to call more than once.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() {
		if s.srv != nil {
			s.srv.DeregisterCreateSIPParticipantTopic("")
		}
		s.cancel()
		if s.srv != nil {
			s.srv.Shutdown()
		}
		s.calls.Wait()
		var errs []error
		if s.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, s.httpSrv.Shutdown(ctx))
			cancel()
		}
		errs = append(errs, s.rc.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Dial is one CreateSIPParticipant request the simulator received, and what
// became of the call. To is the number as dialed, unmasked: the record exists
// so tests can prove a number was dialed once and what the callee heard, and
// HTTPAddr is meant for loopback.
type Dial struct {
	Room      string    `json:"room"`
	To        string    `json:"to"`
	Script    Script    `json:"script"`
	SIPCallID string    `json:"sipCallId"`
	At        time.Time `json:"at"`

	// AnsweredAt is when the callee picked up; EndedAt when its side of
	// the call ended (hung up, transferred, or removed by the room).
	AnsweredAt *time.Time `json:"answeredAt,omitempty"`
	EndedAt    *time.Time `json:"endedAt,omitempty"`
	// Heard is what the callee received from the other participants.
	Heard Heard `json:"heard"`
	// Said is what the callee said, in order (scripts that reply).
	Said []string `json:"said,omitempty"`
	// TransferredTo is the REFER target of a TransferSIPParticipant that
	// moved the call ("tel:+1555...").
	TransferredTo string `json:"transferredTo,omitempty"`
}

func (d *Dial) clone() Dial {
	c := *d
	c.Said = slices.Clone(d.Said)
	c.Heard.Texts = slices.Clone(d.Heard.Texts)
	c.Heard.Seen = slices.Clone(d.Heard.Seen)
	return c
}

// Dials counts CreateSIPParticipant requests per room name: the number of
// times a call's room had its callee dialed. A dialer that places one call
// per room must never make it exceed 1.
func (s *Sim) Dials() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int)
	for _, d := range s.dials {
		out[d.Room]++
	}
	return out
}

// DialLog returns every dial received, oldest first, as it stands now.
func (s *Sim) DialLog() []Dial {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Dial, len(s.dials))
	for i, d := range s.dials {
		out[i] = d.clone()
	}
	return out
}

// DialTo returns the dial of room, as it stands now (the last one, if the
// room was dialed more than once).
func (s *Sim) DialTo(room string) (Dial, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.dials) - 1; i >= 0; i-- {
		if s.dials[i].Room == room {
			return s.dials[i].clone(), true
		}
	}
	return Dial{}, false
}

func (s *Sim) recordDial(d Dial) *Dial {
	s.mu.Lock()
	rec := &d
	if len(s.dials) >= s.cfg.DialLog {
		// Forget the oldest. Reslicing keeps the backing array until the
		// next append outgrows it and copies only the kept dials, so the
		// log's memory stays within about twice the bound.
		drop := len(s.dials) - s.cfg.DialLog + 1
		clear(s.dials[:drop])
		s.dials = s.dials[drop:]
	}
	s.dials = append(s.dials, rec)
	s.mu.Unlock()
	s.metrics.dials.WithLabelValues(string(d.Script)).Inc()
	return rec
}

// update changes a dial record under the simulator's lock.
func (s *Sim) update(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// TransferSIPParticipant implements rpc.SIPInternalServerImpl. livekit-server
// sends it on the topic of the call's SIP call id, which an answered call
// registers (callee.go, trackAnswered).
func (s *Sim) TransferSIPParticipant(_ context.Context, req *rpc.InternalTransferSIPParticipantRequest) (*rpc.InternalTransferSIPParticipantResponse, error) {
	s.mu.Lock()
	c := s.answered[req.SipCallId]
	s.mu.Unlock()
	if c == nil {
		return nil, psrpc.NewErrorf(psrpc.NotFound, "phonesim: no answered call %s", req.SipCallId)
	}
	if !c.transfer(req.TransferTo) {
		return nil, psrpc.NewErrorf(psrpc.FailedPrecondition, "phonesim: call %s is already being transferred", req.SipCallId)
	}
	c.log.Info("call transferred", "to", MaskNumber(req.TransferTo))
	return &rpc.InternalTransferSIPParticipantResponse{}, nil
}
