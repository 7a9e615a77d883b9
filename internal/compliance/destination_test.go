package compliance

import (
	"errors"
	"strings"
	"testing"
)

// The toll-fraud examples of the issue are refused for a US workspace with
// default settings; ordinary US numbers and the dev test range are not.
func TestDestinationsByDefault(t *testing.T) {
	us := DefaultPolicy("US").Destinations
	cases := []struct {
		number string
		ok     bool
		says   []string
	}{
		{"+19005550123", false, []string{"premium_rate", "compliance.allow_number_types"}},
		{"+5352123456", false, []string{"in CU", "calls only US", "compliance.allowed_countries"}},
		{"+37190012345", false, []string{"in LV", "premium_rate"}},
		{"+14185550123", false, []string{"in CA"}},         // Canada shares +1, not the country
		{"+447700900123", false, []string{"number range"}}, // Ofcom's drama range: no valid range
		{"+80012345678", false, []string{"international network"}},
		{"+12125550123", true, nil},
		{"+18005550123", true, nil}, // toll-free: the called party pays
		{"+15550100001", true, nil}, // the fictional test range rings no one
	}
	for _, c := range cases {
		n, err := Classify(c.number)
		if err != nil {
			t.Fatalf("%s: %v", c.number, err)
		}
		ok, why := us.Allowed(n)
		if ok != c.ok {
			t.Errorf("%s (%s %s): allowed %v, want %v: %s", c.number, n.Region, n.Type, ok, c.ok, why)
			continue
		}
		for _, s := range c.says {
			if !strings.Contains(why, s) {
				t.Errorf("%s: reason %q does not say %q", c.number, why, s)
			}
		}
	}
}

// A workspace that lists a country and a high-risk type may call them; the
// test range stays a US number and is refused to a workspace elsewhere.
func TestDestinationsWhenAllowed(t *testing.T) {
	p, err := PolicySpec{HomeCountry: "LV", AllowedCountries: []string{"LV", "US"}, AllowNumberTypes: []string{"premium_rate"}}.Parse()
	if err != nil {
		t.Fatal(err)
	}
	for _, number := range []string{"+37190012345", "+19005550123", "+12125550123"} {
		n, _ := Classify(number)
		if ok, why := p.Destinations.Allowed(n); !ok {
			t.Errorf("%s refused: %s", number, why)
		}
	}
	gb, _ := PolicySpec{HomeCountry: "GB"}.Parse()
	n, _ := Classify("+15550100001")
	if ok, _ := gb.Destinations.Allowed(n); ok {
		t.Error("a GB workspace may call the US test range")
	}
}

func TestClassify(t *testing.T) {
	const manyZones = 1000
	cases := []struct {
		number, region string
		typ            NumberType
		zones          int // -1: unknown; manyZones: the whole country code's
	}{
		{"+12125550123", "US", TypeFixedLineOrMobile, 1},
		{"+17015550123", "US", TypeFixedLineOrMobile, 2},
		{"+19005550123", "US", TypePremiumRate, manyZones}, // non-geographic: every NANP zone
		{"+61291234567", "AU", TypeFixedLine, 1},
		{"+15550100001", "US", TypeFixedLineOrMobile, -1},
		{"+447700900123", "", TypeUnknown, -1},
	}
	for _, c := range cases {
		n, err := Classify(c.number)
		if err != nil {
			t.Fatalf("%s: %v", c.number, err)
		}
		zones := len(n.Zones())
		if n.Zones() == nil {
			zones = -1
		} else if zones >= 10 {
			zones = manyZones
		}
		if n.Region != c.region || n.Type != c.typ || zones != c.zones {
			t.Errorf("%s: %s %s %d zones, want %s %s %d", c.number, n.Region, n.Type, zones, c.region, c.typ, c.zones)
		}
	}
	for _, bad := range []string{"", "12125550123", "+0123456789", "+1212555012a", "+1234567890123456", "+1 212 555 0123"} {
		if _, err := Classify(bad); !errors.Is(err, ErrBadNumber) {
			t.Errorf("Classify(%q) = %v, want ErrBadNumber", bad, err)
		}
	}
}

func TestPolicySpecReportsEveryProblem(t *testing.T) {
	_, err := PolicySpec{
		HomeCountry: "USA", AllowedCountries: []string{"US", "XX"}, AllowNumberTypes: []string{"mobile", "premium"},
		CallingHours:      &HoursSpec{Start: "7"},
		MaxAttemptsPerDay: "0", MaxAttemptsPerWeek: "lots",
	}.Parse()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`home_country: "USA"`, `allowed_countries: "XX"`, `allow_number_types: "mobile" is not a high-risk number type`,
		`allow_number_types: "premium"`, `calling_hours.start: must be HH:MM`, `max_attempts_per_day: must be a number from 1 to 1000, or unlimited, got "0"`,
		`max_attempts_per_week: must be a number from 1 to 1000, or unlimited, got "lots"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if _, err := (PolicySpec{MaxAttemptsPerDay: "8"}).Parse(); err == nil || !strings.Contains(err.Error(), "8 is more than max_attempts_per_week (7)") {
		t.Errorf("day cap above week cap: %v", err)
	}
	p, err := PolicySpec{}.Parse()
	if err != nil || p.Caps != DefaultCaps() || p.Destinations.Countries[0] != "US" || p.Hours.String() != "08:00-21:00 every day" {
		t.Errorf("defaults: %+v %v", p, err)
	}
	p, err = PolicySpec{MaxAttemptsPerDay: "unlimited", MaxAttemptsPerWeek: "unlimited"}.Parse()
	if err != nil || p.Caps != (Caps{Unlimited, Unlimited}) {
		t.Errorf("unlimited: %+v %v", p.Caps, err)
	}
}
