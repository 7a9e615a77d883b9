// Package envconfig reads 12-factor configuration from the environment and
// collects every problem instead of stopping at the first, so an operator
// fixes a broken deployment in one round:
//
//	KAFKA_BROKERS: required; DIALER_MAX_CONCURRENCY: must be >= 1, got 0
package envconfig

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Loader reads variables through Getenv and remembers every problem.
type Loader struct {
	Getenv func(string) string
	errs   []error
}

// New returns a Loader over the process environment.
func New() *Loader { return &Loader{Getenv: os.Getenv} }

// FromMap returns a Loader over a fixed map, for tests.
func FromMap(m map[string]string) *Loader {
	return &Loader{Getenv: func(k string) string { return m[k] }}
}

// Fail records a problem with key.
func (l *Loader) Fail(key, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
}

// Err joins every problem seen so far, or returns nil.
func (l *Loader) Err() error { return errors.Join(l.errs...) }

func (l *Loader) get(key string) (string, bool) {
	v := strings.TrimSpace(l.Getenv(key))
	return v, v != ""
}

// String returns the variable or def.
func (l *Loader) String(key, def string) string {
	if v, ok := l.get(key); ok {
		return v
	}
	return def
}

// Required returns the variable and records a problem if it is unset.
func (l *Loader) Required(key string) string {
	v, ok := l.get(key)
	if !ok {
		l.Fail(key, "required")
	}
	return v
}

// List splits a comma-separated variable, dropping empty items.
func (l *Loader) List(key string, def []string) []string {
	v, ok := l.get(key)
	if !ok {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Int returns the variable as an int within [min, max].
func (l *Loader) Int(key string, def, min, max int) int {
	v, ok := l.get(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		l.Fail(key, "must be an integer, got %q", v)
	case n < min:
		l.Fail(key, "must be >= %d, got %d", min, n)
	case n > max:
		l.Fail(key, "must be <= %d, got %d", max, n)
	default:
		return n
	}
	return def
}

// Float returns the variable as a float64 within [min, max].
func (l *Loader) Float(key string, def, min, max float64) float64 {
	v, ok := l.get(key)
	if !ok {
		return def
	}
	n, err := strconv.ParseFloat(v, 64)
	switch {
	case err != nil:
		l.Fail(key, "must be a number, got %q", v)
	case n < min || n > max:
		l.Fail(key, "must be between %g and %g, got %g", min, max, n)
	default:
		return n
	}
	return def
}

// Duration returns the variable as a Go duration ("5s", "2m") within [min, max].
func (l *Loader) Duration(key string, def, min, max time.Duration) time.Duration {
	v, ok := l.get(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		l.Fail(key, "must be a duration like 5s or 2m, got %q", v)
	case d < min:
		l.Fail(key, "must be >= %s, got %s", min, d)
	case d > max:
		l.Fail(key, "must be <= %s, got %s", max, d)
	default:
		return d
	}
	return def
}

// Durations reads a comma-separated list of durations ("0s,5s,5m").
func (l *Loader) Durations(key string, def []time.Duration) []time.Duration {
	items := l.List(key, nil)
	if items == nil {
		return def
	}
	out := make([]time.Duration, 0, len(items))
	for _, s := range items {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			l.Fail(key, "must be a comma-separated list of non-negative durations, got %q", s)
			return def
		}
		out = append(out, d)
	}
	return out
}

// Bool returns the variable as a bool (true/false/1/0).
func (l *Loader) Bool(key string, def bool) bool {
	v, ok := l.get(key)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		l.Fail(key, "must be true or false, got %q", v)
		return def
	}
	return b
}

// OneOf returns the variable if it is one of allowed.
func (l *Loader) OneOf(key, def string, allowed ...string) string {
	v, ok := l.get(key)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.Fail(key, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	return def
}

// Problems collects what a Validate method finds in a Config built in code,
// in the same "KEY: problem" form as Loader, all of them at once.
type Problems struct{ errs []error }

// Add records a problem with key.
func (p *Problems) Add(key, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
}

// Err joins every problem, or returns nil.
func (p *Problems) Err() error { return errors.Join(p.errs...) }
