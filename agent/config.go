package agent

import (
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/envconfig"
)

// Defaults of the AGENT_* variables.
const (
	DefaultHTTPAddr       = ":8085"
	DefaultMaxJobs        = 50
	DefaultAnswerTimeout  = 2 * time.Minute
	DefaultListenTimeout  = 4 * time.Second
	DefaultMachineSpeech  = 2500 * time.Millisecond
	DefaultHangupGrace    = 3 * time.Second
	DefaultReportTimeout  = time.Minute
	DefaultTransferWait   = 30 * time.Second
	DefaultReconnectDelay = 500 * time.Millisecond
	DefaultDrainTimeout   = 30 * time.Second
	// DefaultTargetLoad is livekit-server's agents.target_load default.
	DefaultTargetLoad = 0.7
)

// Config is everything the reference agent needs. LoadConfig fills it from
// the environment; tests build it in code, and zero values take the defaults.
type Config struct {
	// LiveKitURL is the LiveKit server the worker registers with and whose
	// rooms it joins (LIVEKIT_URL, http(s) or ws(s)). APIKey and APISecret
	// sign the worker's registration token and the RoomService calls that
	// hang a call up (LIVEKIT_API_KEY, LIVEKIT_API_SECRET).
	LiveKitURL, APIKey, APISecret string

	// AgentNames are the LiveKit agent names to take jobs for
	// (AGENT_NAMES, comma-separated; required): the registry's
	// livekit_agent_name of each agent this process plays. One worker
	// connection per name; all of them share MaxJobs.
	AgentNames []string

	// HTTPAddr serves /healthz, /readyz (ready once every name is
	// registered with LiveKit) and /metrics (AGENT_HTTP_ADDR, default
	// :8085). Listener, when set, is served instead (tests).
	HTTPAddr string
	Listener net.Listener

	// MaxJobs caps the calls this process takes at once (AGENT_MAX_JOBS,
	// default 50). At the cap the worker tells LiveKit it is full and
	// declines new jobs, so LiveKit offers them to another worker of the
	// same name.
	MaxJobs int
	// TargetLoad is livekit-server's agents.target_load
	// (AGENT_LIVEKIT_TARGET_LOAD, default 0.7, LiveKit's own default).
	// LiveKit offers a worker no job once the load it reports reaches that
	// figure, so the worker reports its share of MaxJobs scaled to it:
	// TargetLoad x jobs / MaxJobs. Reporting the bare share would have
	// LiveKit stop at 70% of MaxJobs and drop the dispatches beyond it, the
	// calls then placed with no agent in the room (seen at 35 of 50 calls).
	TargetLoad float64

	// AnswerTimeout bounds the wait, after joining, for the callee to
	// answer (AGENT_ANSWER_TIMEOUT, default 2m); the ringing timeout of a
	// call is normally much shorter and ends the wait first.
	AnswerTimeout time.Duration
	// ListenTimeout is how long the agent listens for a reply after its
	// greeting ends before it decides that nobody answered
	// (AGENT_LISTEN_TIMEOUT, default 4s).
	ListenTimeout time.Duration
	// MachineSpeech is how much uninterrupted callee audio, with no reply,
	// makes the agent decide a machine answered (AGENT_MACHINE_SPEECH,
	// default 2.5s): a person says "hello?" and waits, a voicemail plays a
	// long greeting. It is the classic answering-machine-detection cue.
	MachineSpeech time.Duration
	// HangupGrace is how long the agent waits, after its goodbye, for the
	// callee to hang up before it hangs up itself (AGENT_HANGUP_GRACE,
	// default 3s).
	HangupGrace time.Duration
	// TransferWait bounds the wait for the callee to leave after the agent
	// asked Dialstream for a transfer (AGENT_TRANSFER_WAIT, default 30s);
	// past it the agent hangs up.
	TransferWait time.Duration
	// ReportTimeout bounds one report, retries included
	// (AGENT_REPORT_TIMEOUT, default 1m). Ingest answers 503 while it
	// cannot write to Kafka, so this is the broker outage a report
	// survives: a restart takes seconds, and the call's verdict is worth
	// the wait (a report is taken up to DIALSTREAM_AGENT_REPORT_WINDOW
	// after the call's end).
	ReportTimeout time.Duration
	// ReconnectDelay is the first wait before reconnecting a lost worker
	// connection; it doubles up to 10s (AGENT_RECONNECT_DELAY, default 500ms).
	ReconnectDelay time.Duration
	// DrainTimeout is how long shutdown lets calls in progress finish
	// (AGENT_DRAIN_TIMEOUT, default 30s). From the start of shutdown the
	// worker takes no new job; past the timeout it leaves the calls that
	// remain, which the dialer then ends at their max call duration.
	DrainTimeout time.Duration

	// Reporter sends the agent's reports; nil means HTTP to each call's
	// report channel (NewHTTPReporter). Tests put a recorder here.
	Reporter Reporter

	Logger *slog.Logger
	// Metrics is the process registry; nil makes a new one.
	Metrics *prometheus.Registry
	// TracerProvider makes one span per call; nil means otel's global one.
	TracerProvider trace.TracerProvider
}

// agentNameRE is what this agent accepts as a LiveKit agent name: the
// registry's names, and nothing that could smuggle a separator into logs.
var agentNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// LoadConfig reads the agent's variables and LiveKit's. Problems are recorded
// on l; call l.Err() once everything is loaded.
func LoadConfig(l *envconfig.Loader) Config {
	return Config{
		LiveKitURL:     l.Required("LIVEKIT_URL"),
		APIKey:         l.Required("LIVEKIT_API_KEY"),
		APISecret:      l.Required("LIVEKIT_API_SECRET"),
		AgentNames:     l.List("AGENT_NAMES", nil),
		HTTPAddr:       l.String("AGENT_HTTP_ADDR", DefaultHTTPAddr),
		MaxJobs:        l.Int("AGENT_MAX_JOBS", DefaultMaxJobs, 1, 100_000),
		TargetLoad:     l.Float("AGENT_LIVEKIT_TARGET_LOAD", DefaultTargetLoad, 0.01, 1),
		AnswerTimeout:  l.Duration("AGENT_ANSWER_TIMEOUT", DefaultAnswerTimeout, time.Second, 24*time.Hour),
		ListenTimeout:  l.Duration("AGENT_LISTEN_TIMEOUT", DefaultListenTimeout, 100*time.Millisecond, time.Minute),
		MachineSpeech:  l.Duration("AGENT_MACHINE_SPEECH", DefaultMachineSpeech, 100*time.Millisecond, time.Minute),
		HangupGrace:    l.Duration("AGENT_HANGUP_GRACE", DefaultHangupGrace, 0, time.Minute),
		TransferWait:   l.Duration("AGENT_TRANSFER_WAIT", DefaultTransferWait, time.Second, 10*time.Minute),
		ReportTimeout:  l.Duration("AGENT_REPORT_TIMEOUT", DefaultReportTimeout, 100*time.Millisecond, 5*time.Minute),
		ReconnectDelay: l.Duration("AGENT_RECONNECT_DELAY", DefaultReconnectDelay, 10*time.Millisecond, time.Minute),
		DrainTimeout:   l.Duration("AGENT_DRAIN_TIMEOUT", DefaultDrainTimeout, 0, time.Hour),
	}
}

// withDefaults fills the zero values of a Config built in code.
func (c Config) withDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.MaxJobs == 0 {
		c.MaxJobs = DefaultMaxJobs
	}
	if c.TargetLoad == 0 {
		c.TargetLoad = DefaultTargetLoad
	}
	if c.AnswerTimeout == 0 {
		c.AnswerTimeout = DefaultAnswerTimeout
	}
	if c.ListenTimeout == 0 {
		c.ListenTimeout = DefaultListenTimeout
	}
	if c.MachineSpeech == 0 {
		c.MachineSpeech = DefaultMachineSpeech
	}
	if c.HangupGrace == 0 {
		c.HangupGrace = DefaultHangupGrace
	}
	if c.TransferWait == 0 {
		c.TransferWait = DefaultTransferWait
	}
	if c.ReportTimeout == 0 {
		c.ReportTimeout = DefaultReportTimeout
	}
	if c.ReconnectDelay == 0 {
		c.ReconnectDelay = DefaultReconnectDelay
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	return c
}

// Validate reports every problem of a Config, loaded or built in code.
func (c Config) Validate() error {
	var p envconfig.Problems
	switch u, err := url.Parse(c.LiveKitURL); {
	case c.LiveKitURL == "":
		p.Add("LIVEKIT_URL", "required")
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "ws" && u.Scheme != "wss"):
		p.Add("LIVEKIT_URL", "must be an http(s) or ws(s) URL, got %q", c.LiveKitURL)
	}
	if c.APIKey == "" {
		p.Add("LIVEKIT_API_KEY", "required")
	}
	if c.APISecret == "" {
		p.Add("LIVEKIT_API_SECRET", "required")
	}
	if len(c.AgentNames) == 0 {
		p.Add("AGENT_NAMES", "required (comma-separated LiveKit agent names, the registry's livekit_agent_name)")
	}
	seen := map[string]bool{}
	for _, n := range c.AgentNames {
		if !agentNameRE.MatchString(n) {
			p.Add("AGENT_NAMES", "%q is not an agent name (%s)", n, agentNameRE)
		} else if seen[n] {
			p.Add("AGENT_NAMES", "%q is listed twice", n)
		}
		seen[n] = true
	}
	if c.MaxJobs < 0 {
		p.Add("AGENT_MAX_JOBS", "must be >= 1, got %d", c.MaxJobs)
	}
	if c.TargetLoad < 0 || c.TargetLoad > 1 {
		p.Add("AGENT_LIVEKIT_TARGET_LOAD", "must be in (0, 1], got %g", c.TargetLoad)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"AGENT_ANSWER_TIMEOUT", c.AnswerTimeout}, {"AGENT_LISTEN_TIMEOUT", c.ListenTimeout},
		{"AGENT_MACHINE_SPEECH", c.MachineSpeech}, {"AGENT_HANGUP_GRACE", c.HangupGrace},
		{"AGENT_TRANSFER_WAIT", c.TransferWait}, {"AGENT_REPORT_TIMEOUT", c.ReportTimeout},
		{"AGENT_RECONNECT_DELAY", c.ReconnectDelay}, {"AGENT_DRAIN_TIMEOUT", c.DrainTimeout},
	} {
		if d.v < 0 {
			p.Add(d.key, "must not be negative, got %s", d.v)
		}
	}
	return p.Err()
}
