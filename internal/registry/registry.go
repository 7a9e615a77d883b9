// Package registry loads the workspaces and agents Dialstream serves from a
// YAML file. Ingest uses it to authenticate and validate requests, the dialer
// to find each agent's LiveKit settings and each workspace's limits, the
// notifier to find each workspace's webhook signing secrets.
package registry

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/schemas"
)

// Limits are a workspace's admission limits.
type Limits struct {
	// MaxConcurrentCalls bounds the workspace's calls between dialing and ended.
	MaxConcurrentCalls int `yaml:"max_concurrent_calls" json:"max_concurrent_calls"`
	// CallsPerSecond and Burst make the token bucket that paces new dials.
	CallsPerSecond float64 `yaml:"calls_per_second" json:"calls_per_second"`
	Burst          int     `yaml:"burst" json:"burst"`
	// RequestsPerSecond bounds POST /v1/api/call per ingest replica (429 above it).
	RequestsPerSecond float64 `yaml:"requests_per_second" json:"requests_per_second"`
}

// Workspace is a tenant.
type Workspace struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// APIKeys holds SHA-256 hex digests of the workspace's API keys, never the
	// keys. Keys are long random strings, so a fast hash is enough: there is
	// nothing to brute-force that is cheaper than guessing the key itself.
	APIKeys []string `yaml:"api_key_sha256"`
	// WebhookSecrets signs deliveries ("whsec_..."): the first is current; more
	// than one means a rotation is under way and each delivery carries all.
	WebhookSecrets []string `yaml:"webhook_secrets"`
	// WebhookSecretsEnv names an environment variable holding the secrets,
	// comma-separated, so they need not sit in the file.
	WebhookSecretsEnv string `yaml:"webhook_secrets_env"`
	Limits            Limits `yaml:"limits"`
	// MaskPhoneNumbers makes the API show only the last 4 digits of `to`.
	MaskPhoneNumbers bool `yaml:"mask_phone_numbers"`
	// Compliance is where, when and how often the workspace may call:
	// home_country, allowed_countries, allow_number_types, calling_hours,
	// max_attempts_per_day, max_attempts_per_week (see
	// compliance.PolicySpec). Everything left out takes the defaults: the
	// home country (US) only, no high-risk number types, 08:00-21:00 every
	// day in the callee's local time, 3 attempts per number per 24 hours
	// and 7 per 7 days.
	Compliance compliance.PolicySpec `yaml:"compliance"`

	policy compliance.Policy
}

// Agent is an AI agent that places calls for one workspace.
type Agent struct {
	ID               string `yaml:"id"`
	Workspace        string `yaml:"workspace"`
	LiveKitAgentName string `yaml:"livekit_agent_name"`
	SIPTrunkID       string `yaml:"sip_trunk_id"`
	// CallerID is the number the callee sees (the trunk's from number).
	CallerID        string        `yaml:"caller_id"`
	RingingTimeout  time.Duration `yaml:"ringing_timeout"`
	MaxCallDuration time.Duration `yaml:"max_call_duration"`
	// Settings are passed to the agent in its dispatch metadata, as JSON.
	Settings map[string]any `yaml:"settings"`
	// CallingHours, when set, replace the workspace's calling hours for
	// this agent's calls (e.g. an agent for business numbers).
	CallingHours *compliance.HoursSpec `yaml:"calling_hours"`

	hours *compliance.Hours
}

// File is the YAML document.
type File struct {
	Workspaces []*Workspace `yaml:"workspaces"`
	Agents     []*Agent     `yaml:"agents"`
}

// Registry is the loaded, validated file. It is read-only after Load.
type Registry struct {
	workspaces map[string]*Workspace
	agents     map[string]*Agent
	keys       []keyEntry
}

type keyEntry struct {
	digest    [32]byte
	workspace *Workspace
}

// Defaults applied to agents that leave a setting out.
const (
	DefaultRingingTimeout  = 30 * time.Second
	DefaultMaxCallDuration = 30 * time.Minute
)

var (
	idRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	e164RE   = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	envRefRE = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)
)

// Load reads and validates a registry file.
func Load(path string) (*Registry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r, err := Parse(b, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", path, err)
	}
	return r, nil
}

// Parse decodes a registry document strictly (unknown keys are errors) and
// reports every problem at once.
//
// ${NAME} anywhere in the document is replaced by the environment variable
// NAME before parsing (an unset one is an error), so one file can serve
// several environments: trunk ids and caller ids differ per LiveKit project.
// A bare $ is left alone, so agent prompts may contain dollar signs.
func Parse(b []byte, getenv func(string) string) (*Registry, error) {
	var unset []string
	b = envRefRE.ReplaceAllFunc(b, func(m []byte) []byte {
		name := string(m[2 : len(m)-1])
		v := getenv(name)
		if v == "" {
			unset = append(unset, name)
		}
		return []byte(v)
	})
	if len(unset) > 0 {
		return nil, fmt.Errorf("environment variables referenced by the registry are not set: %s", strings.Join(unset, ", "))
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	r := &Registry{workspaces: map[string]*Workspace{}, agents: map[string]*Agent{}}
	seenKey := map[string]string{}
	for i, w := range f.Workspaces {
		where := fmt.Sprintf("workspaces[%d]", i)
		if !idRE.MatchString(w.ID) {
			fail("%s.id: must match %s, got %q", where, idRE, w.ID)
		} else if _, dup := r.workspaces[w.ID]; dup {
			fail("%s.id: duplicate workspace %q", where, w.ID)
		}
		where = "workspace " + w.ID
		for _, k := range w.APIKeys {
			k = strings.ToLower(strings.TrimSpace(k))
			if !digestRE.MatchString(k) {
				fail("%s: api_key_sha256 entries must be 64 hex characters (use `dialstream hash-key`)", where)
				continue
			}
			if other, dup := seenKey[k]; dup {
				fail("%s: api key also belongs to workspace %s", where, other)
				continue
			}
			seenKey[k] = w.ID
			var d [32]byte
			_, _ = hex.Decode(d[:], []byte(k))
			r.keys = append(r.keys, keyEntry{digest: d, workspace: w})
		}
		if w.WebhookSecretsEnv != "" {
			for _, s := range strings.Split(getenv(w.WebhookSecretsEnv), ",") {
				if s = strings.TrimSpace(s); s != "" {
					w.WebhookSecrets = append(w.WebhookSecrets, s)
				}
			}
		}
		for _, s := range w.WebhookSecrets {
			if !strings.HasPrefix(s, "whsec_") || len(s) < len("whsec_")+16 {
				fail("%s: webhook secrets must look like whsec_<base64 of at least 16 bytes>", where)
			}
		}
		l := &w.Limits
		if l.MaxConcurrentCalls == 0 {
			l.MaxConcurrentCalls = 10
		}
		if l.CallsPerSecond == 0 {
			l.CallsPerSecond = 5
		}
		if l.Burst == 0 {
			l.Burst = max(1, int(l.CallsPerSecond))
		}
		if l.RequestsPerSecond == 0 {
			l.RequestsPerSecond = 100
		}
		if l.MaxConcurrentCalls < 1 || l.CallsPerSecond <= 0 || l.Burst < 1 || l.RequestsPerSecond <= 0 {
			fail("%s: limits must be positive, got %+v", where, *l)
		}
		p, err := w.Compliance.Parse()
		for _, e := range split(err) {
			fail("%s: compliance.%v", where, e)
		}
		w.policy = p
		r.workspaces[w.ID] = w
	}
	for i, a := range f.Agents {
		where := fmt.Sprintf("agents[%d]", i)
		if !idRE.MatchString(a.ID) {
			fail("%s.id: must match %s, got %q", where, idRE, a.ID)
		} else if _, dup := r.agents[a.ID]; dup {
			fail("%s.id: duplicate agent %q", where, a.ID)
		}
		where = "agent " + a.ID
		if _, ok := r.workspaces[a.Workspace]; !ok {
			fail("%s: workspace %q is not defined", where, a.Workspace)
		}
		if a.LiveKitAgentName == "" {
			fail("%s: livekit_agent_name: required", where)
		}
		if a.SIPTrunkID == "" {
			fail("%s: sip_trunk_id: required", where)
		}
		if a.CallerID != "" && !e164RE.MatchString(a.CallerID) {
			fail("%s: caller_id: must be an E.164 number like +15550100000, got %q", where, a.CallerID)
		}
		if a.RingingTimeout == 0 {
			a.RingingTimeout = DefaultRingingTimeout
		}
		if a.MaxCallDuration == 0 {
			a.MaxCallDuration = DefaultMaxCallDuration
		}
		if a.RingingTimeout < time.Second || a.RingingTimeout > 5*time.Minute {
			fail("%s: ringing_timeout: must be between 1s and 5m, got %s", where, a.RingingTimeout)
		}
		if a.MaxCallDuration < time.Second || a.MaxCallDuration > 24*time.Hour {
			fail("%s: max_call_duration: must be between 1s and 24h, got %s", where, a.MaxCallDuration)
		}
		if _, err := json.Marshal(a.Settings); err != nil {
			fail("%s: settings: not representable as JSON: %v", where, err)
		} else {
			for _, e := range dispatchProblems(a) {
				fail("%s: %s", where, e)
			}
		}
		if a.CallingHours != nil {
			h, err := a.CallingHours.Parse()
			for _, e := range split(err) {
				fail("%s: calling_hours.%v", where, e)
			}
			a.hours = &h
		}
		r.agents[a.ID] = a
	}
	if len(r.workspaces) == 0 {
		fail("workspaces: at least one is required")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// split returns the parts of a joined error (none for nil).
func split(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// HashKey returns the digest stored for an API key.
func HashKey(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:])
}

// Authenticate returns the workspace that owns apiKey. Every stored digest is
// compared in constant time, so timing says nothing about which key is close.
func (r *Registry) Authenticate(apiKey string) (*Workspace, bool) {
	if apiKey == "" {
		return nil, false
	}
	d := sha256.Sum256([]byte(apiKey))
	var found *Workspace
	for _, k := range r.keys {
		if subtle.ConstantTimeCompare(d[:], k.digest[:]) == 1 {
			found = k.workspace
		}
	}
	return found, found != nil
}

// Workspace returns a workspace by id.
func (r *Registry) Workspace(id string) (*Workspace, bool) {
	w, ok := r.workspaces[id]
	return w, ok
}

// Workspaces returns every workspace.
func (r *Registry) Workspaces() []*Workspace {
	out := make([]*Workspace, 0, len(r.workspaces))
	for _, w := range r.workspaces {
		out = append(out, w)
	}
	return out
}

// Agent returns the agent only if it belongs to workspaceID: an agent of
// another workspace is indistinguishable from a missing one.
func (r *Registry) Agent(workspaceID, agentID string) (*Agent, bool) {
	a, ok := r.agents[agentID]
	if !ok || a.Workspace != workspaceID {
		return nil, false
	}
	return a, true
}

// Policy returns the compliance policy of a workspace's calls through one of
// its agents: the workspace's, with the agent's calling hours when it has
// its own. agentID may be empty for the workspace's policy alone. An agent of
// another workspace is missing, as in Agent. It implements
// compliance.Policies.
func (r *Registry) Policy(workspaceID, agentID string) (compliance.Policy, bool) {
	w, ok := r.workspaces[workspaceID]
	if !ok {
		return compliance.Policy{}, false
	}
	p := w.policy
	if agentID == "" {
		return p, true
	}
	a, ok := r.Agent(workspaceID, agentID)
	if !ok {
		return compliance.Policy{}, false
	}
	if a.hours != nil {
		p.Hours = *a.hours
	}
	return p, true
}

var _ compliance.Policies = (*Registry)(nil)

// dispatchProblems checks what of an agent goes into every dispatch of its
// calls (agent.dispatch.v1): its settings (greeting, on_machine,
// transfer_to) and its caller id. Checked here, a typo fails the registry at
// start instead of every dial of the agent.
func dispatchProblems(a *Agent) []string {
	d := schemas.AgentDispatch{CallID: "000000000000000000000000", WorkspaceID: "ws", CallAgentID: "agent", Room: "room",
		To: "+15550100001", From: a.CallerID, Settings: a.Settings}
	_, err := d.Encode()
	var ve *schemas.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, f := range ve.Fields {
		field := strings.ReplaceAll(strings.TrimPrefix(f.Field, "/"), "/", ".")
		if field == "from" {
			field = "caller_id"
		}
		out = append(out, field+": "+f.Message)
	}
	return out
}
