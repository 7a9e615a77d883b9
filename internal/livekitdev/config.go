package livekitdev

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Defaults used when a Config field is left zero.
const (
	// DefaultAPIKey and DefaultAPISecret are dev-only credentials. The secret
	// is 32+ characters so livekit-server does not log a "secret is too
	// short" error at start-up.
	DefaultAPIKey    = "devkey"
	DefaultAPISecret = "dialstream-dev-secret-not-for-production"

	defaultLogLevel     = "info"
	defaultReadyTimeout = 30 * time.Second
)

// Config describes one local livekit-server. The zero value is usable: free
// ports, in-process Redis, dev credentials, logs discarded.
type Config struct {
	// Binary is the livekit-server executable; empty means FindBinary().
	Binary string

	// APIKey and APISecret become the server's only key pair (and sign its
	// webhooks). Empty means DefaultAPIKey / DefaultAPISecret.
	APIKey, APISecret string

	// Port is the HTTP/WebSocket port (RoomService, SIP, signalling),
	// bound on 127.0.0.1 only. 0 picks a free port.
	Port int

	// RTCUDPPort is the single UDP port all WebRTC media is muxed on,
	// bound on 127.0.0.1 only. 0 picks a free port.
	RTCUDPPort int

	// RTCTCPPort enables ICE over TCP on that port. 0 (the default) leaves
	// it off: livekit-server binds its ICE/TCP listener on every interface
	// whatever bind_addresses says, and loopback UDP never needs the fallback.
	RTCTCPPort int

	// WebhookURLs receive livekit's signed webhooks (signed with APIKey).
	WebhookURLs []string

	// RedisAddr points livekit-server at an existing Redis. Empty starts a
	// miniredis in this process, which is what makes the SIP psrpc bus (and
	// so the phone simulator) available without any other service.
	RedisAddr string

	// LogLevel is livekit-server's log level: debug, info, warn or error.
	// Empty means info.
	LogLevel string

	// LogWriter receives livekit-server's stdout and stderr. Nil discards
	// them; the last few KiB are still quoted in a start-up error.
	LogWriter io.Writer

	// ReadyTimeout bounds how long Start waits for the HTTP port to report
	// healthy (the parent ctx may cut it shorter). 0 means 30s.
	ReadyTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.APIKey == "" {
		c.APIKey = DefaultAPIKey
	}
	if c.APISecret == "" {
		c.APISecret = DefaultAPISecret
	}
	if c.LogLevel == "" {
		c.LogLevel = defaultLogLevel
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = defaultReadyTimeout
	}
	return c
}

// Validate reports every problem with the config at once.
func (c Config) Validate() error {
	var errs []error
	port := func(name string, p int) {
		if p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s: must be 0..65535, got %d", name, p))
		}
	}
	port("Port", c.Port)
	port("RTCUDPPort", c.RTCUDPPort)
	port("RTCTCPPort", c.RTCTCPPort)
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LogLevel: must be debug, info, warn or error, got %q", c.LogLevel))
	}
	if (c.APIKey == "") != (c.APISecret == "") {
		errs = append(errs, errors.New("APIKey, APISecret: set both or neither"))
	}
	return errors.Join(errs...)
}

// serverConfig mirrors the subset of livekit-server v1.13.5's config file
// (pkg/config.Config) that dev mode sets. It is written as JSON, which is
// valid YAML, and livekit-server parses it in strict mode, so a misspelled
// key fails start-up instead of being ignored.
type serverConfig struct {
	Port          int               `json:"port"`
	BindAddresses []string          `json:"bind_addresses"`
	RTC           rtcConfig         `json:"rtc"`
	Redis         redisConfig       `json:"redis"`
	Keys          map[string]string `json:"keys"`
	Webhook       *webhookConfig    `json:"webhook,omitempty"`
	Logging       loggingConfig     `json:"logging"`
}

type rtcConfig struct {
	// UDPPort is a string because livekit parses it as "port" or "start-end".
	UDPPort       string `json:"udp_port"`
	TCPPort       int    `json:"tcp_port"`
	NodeIP        string `json:"node_ip"`
	UseExternalIP bool   `json:"use_external_ip"`
	// Loopback candidates are off by default in pion; without them the
	// UDP mux would refuse 127.0.0.1, the only address we allow.
	EnableLoopbackCandidate bool     `json:"enable_loopback_candidate"`
	IPs                     ipFilter `json:"ips"`
	// STUNServers is what the server hands its WebRTC clients (the phone
	// simulator among them). Left empty, livekit-server hands out public STUN
	// servers (Google's, Twilio's) and every client would send packets off this
	// machine; a loopback address keeps all traffic local.
	STUNServers []string `json:"stun_servers"`
}

type ipFilter struct {
	Includes []string `json:"includes"`
}

type redisConfig struct {
	Address string `json:"address"`
}

type webhookConfig struct {
	APIKey string   `json:"api_key"`
	URLs   []string `json:"urls"`
}

type loggingConfig struct {
	Level     string `json:"level"`
	PionLevel string `json:"pion_level"`
}

// renderConfig builds the config file for resolved (non-zero) ports.
func renderConfig(c Config, redisAddr string) ([]byte, error) {
	sc := serverConfig{
		Port:          c.Port,
		BindAddresses: []string{"127.0.0.1"},
		RTC: rtcConfig{
			UDPPort:                 strconv.Itoa(c.RTCUDPPort),
			TCPPort:                 c.RTCTCPPort,
			NodeIP:                  "127.0.0.1",
			UseExternalIP:           false,
			EnableLoopbackCandidate: true,
			IPs:                     ipFilter{Includes: []string{"127.0.0.1/32"}},
			STUNServers:             []string{"127.0.0.1:3478"},
		},
		Redis:   redisConfig{Address: redisAddr},
		Keys:    map[string]string{c.APIKey: c.APISecret},
		Logging: loggingConfig{Level: c.LogLevel, PionLevel: "error"},
	}
	if len(c.WebhookURLs) > 0 {
		sc.Webhook = &webhookConfig{APIKey: c.APIKey, URLs: c.WebhookURLs}
	}
	return json.MarshalIndent(sc, "", "  ")
}
