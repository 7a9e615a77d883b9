package compliance

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Caps bound the attempts to one number per workspace: at most PerDay in any
// rolling 24 hours and PerWeek in any rolling 7 days. Unlimited lifts one.
type Caps struct {
	PerDay, PerWeek int
}

// Unlimited, as a cap, lifts it.
const Unlimited = -1

// Defaults of a workspace's policy.
const (
	DefaultHomeCountry = "US"
	DefaultPerDay      = 3
	DefaultPerWeek     = 7
	// MaxCap bounds a numeric cap; above it, say "unlimited".
	MaxCap = 1000
)

// DefaultCaps returns 3 per day and 7 per week.
func DefaultCaps() Caps { return Caps{PerDay: DefaultPerDay, PerWeek: DefaultPerWeek} }

// Policy is everything the rules need to know about one workspace (and
// agent): where it may call, when, and how often. The zero Policy allows
// nothing.
type Policy struct {
	Hours        Hours
	Destinations Destinations
	Caps         Caps
}

// DefaultPolicy is the policy of a workspace that sets nothing: its home
// country only, no high-risk types, 08:00-21:00 every day, 3 per day and 7
// per week.
func DefaultPolicy(homeCountry string) Policy {
	return Policy{Hours: DefaultHours(), Destinations: Destinations{Countries: []string{homeCountry}}, Caps: DefaultCaps()}
}

// PolicySpec is a workspace's compliance settings as the registry writes
// them (the workspace's `compliance:` block). Every field is optional.
type PolicySpec struct {
	// HomeCountry is the workspace's country (ISO 3166-1 alpha-2, "US"):
	// the default of AllowedCountries. Default US.
	HomeCountry string `yaml:"home_country"`
	// AllowedCountries are the countries calls may go to; default the home
	// country only. A call elsewhere ends destination_not_allowed.
	AllowedCountries []string `yaml:"allowed_countries"`
	// AllowNumberTypes lists the high-risk number types (HighRiskTypes) the
	// workspace may call anyway; default none.
	AllowNumberTypes []string `yaml:"allow_number_types"`
	// CallingHours in the callee's local time; default 08:00-21:00 every
	// day. An agent may override them with its own calling_hours.
	CallingHours *HoursSpec `yaml:"calling_hours"`
	// MaxAttemptsPerDay and MaxAttemptsPerWeek cap the attempts to one
	// number in any rolling 24 hours and 7 days: a number from 1 to 1000, or
	// "unlimited". Defaults 3 and 7.
	MaxAttemptsPerDay  string `yaml:"max_attempts_per_day"`
	MaxAttemptsPerWeek string `yaml:"max_attempts_per_week"`
}

// Parse validates the spec, fills the defaults and reports every problem,
// each naming its field as the registry spells it.
func (s PolicySpec) Parse() (Policy, error) {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	home := s.HomeCountry
	if home == "" {
		home = DefaultHomeCountry
	}
	if !ValidRegion(home) {
		fail("home_country", "%q is not an ISO 3166-1 alpha-2 region code the phone-number library knows (e.g. US, GB, DE)", s.HomeCountry)
	}
	p := DefaultPolicy(home)
	if len(s.AllowedCountries) > 0 {
		p.Destinations.Countries = nil
		for _, c := range s.AllowedCountries {
			if !ValidRegion(c) {
				fail("allowed_countries", "%q is not an ISO 3166-1 alpha-2 region code the phone-number library knows (e.g. US, GB, DE)", c)
				continue
			}
			if !slices.Contains(p.Destinations.Countries, c) {
				p.Destinations.Countries = append(p.Destinations.Countries, c)
			}
		}
	}
	for _, t := range s.AllowNumberTypes {
		nt := NumberType(t)
		if !slices.Contains(HighRiskTypes, nt) {
			fail("allow_number_types", "%q is not a high-risk number type; list only %s (other valid types are always allowed)", t, joinTypes(HighRiskTypes))
			continue
		}
		p.Destinations.AllowTypes = append(p.Destinations.AllowTypes, nt)
	}
	if s.CallingHours != nil {
		h, err := s.CallingHours.Parse()
		for _, e := range splitErrs(err) {
			errs = append(errs, fmt.Errorf("calling_hours.%w", e))
		}
		p.Hours = h
	}
	var err error
	if p.Caps.PerDay, err = parseCap(s.MaxAttemptsPerDay, DefaultPerDay); err != nil {
		fail("max_attempts_per_day", "%v", err)
	}
	if p.Caps.PerWeek, err = parseCap(s.MaxAttemptsPerWeek, DefaultPerWeek); err != nil {
		fail("max_attempts_per_week", "%v", err)
	}
	if d, w := p.Caps.PerDay, p.Caps.PerWeek; w != Unlimited && (d == Unlimited || d > w) {
		fail("max_attempts_per_day", "%s is more than max_attempts_per_week (%s): a day is part of every week", capString(d), capString(w))
	}
	if err := errors.Join(errs...); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func parseCap(s string, def int) (int, error) {
	switch s = strings.TrimSpace(s); s {
	case "":
		return def, nil
	case "unlimited":
		return Unlimited, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxCap {
		return 0, fmt.Errorf("must be a number from 1 to %d, or unlimited, got %q", MaxCap, s)
	}
	return n, nil
}

func capString(n int) string {
	if n == Unlimited {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

func joinTypes(ts []NumberType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// splitErrs returns the parts of a joined error (none for nil), so that a
// caller can put its own field path in front of each.
func splitErrs(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
