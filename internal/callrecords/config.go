package callrecords

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dialstream/dialstream/internal/envconfig"
)

// DefaultRetention is CALL_RECORDS_RETENTION's default: records kept
// about thirteen months, so a year's records can be reconciled after the
// year ends.
const DefaultRetention = 400 * 24 * time.Hour

// DefaultRecorderGroup is RECORDER_GROUP_ID's default: the recorder's
// consumer group, under whose name its offsets are stored with its rows
// (ingest reads them to know what the recorder has written).
const DefaultRecorderGroup = "dialstream-recorder"

// MaxRetention keeps requested_at - retention inside int64 nanoseconds.
const MaxRetention = 100 * 365 * 24 * time.Hour

// Config is what every user of the records reads from the environment
// (the recorder, ingest, `dialstream records purge`).
type Config struct {
	// URL is DATABASE_URL: postgres://... or sqlite://path; "" when unset.
	URL string
	// Retention is CALL_RECORDS_RETENTION: whole days ("400d") or a Go
	// duration ("720h"), from 1h; default 400d.
	Retention time.Duration
}

// LoadConfig reads DATABASE_URL and CALL_RECORDS_RETENTION; whether the
// URL is required is the caller's to say.
func LoadConfig(l *envconfig.Loader) Config {
	c := Config{URL: l.String("DATABASE_URL", ""), Retention: DefaultRetention}
	if v := strings.TrimSpace(l.Getenv("CALL_RECORDS_RETENTION")); v != "" {
		d, err := ParseRetention(v)
		if err != nil {
			l.Fail("CALL_RECORDS_RETENTION", "%v", err)
		} else {
			c.Retention = d
		}
	}
	if c.URL != "" {
		if _, _, err := parseURL(c.URL, false); err != nil {
			l.Fail("DATABASE_URL", "%v", err)
		}
	}
	return c
}

// ParseRetention reads whole days ("400d") or a Go duration ("720h"),
// between 1h and MaxRetention.
func ParseRetention(v string) (time.Duration, error) {
	bad := fmt.Errorf("must be whole days like 400d or a duration like 720h, got %q", v)
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > int(MaxRetention/(24*time.Hour)) {
			return 0, bad
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, bad
		}
	}
	if d < time.Hour || d > MaxRetention {
		return 0, fmt.Errorf("must be between 1h and %dd, got %s", MaxRetention/(24*time.Hour), v)
	}
	return d, nil
}
