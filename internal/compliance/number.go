package compliance

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// NumberType is the phone-number library's classification of a number, as a
// bounded word (usable as a metric label and in the registry).
type NumberType string

const (
	TypeFixedLine         NumberType = "fixed_line"
	TypeMobile            NumberType = "mobile"
	TypeFixedLineOrMobile NumberType = "fixed_line_or_mobile"
	TypeTollFree          NumberType = "toll_free"
	TypePremiumRate       NumberType = "premium_rate"
	TypeSharedCost        NumberType = "shared_cost"
	TypeVoIP              NumberType = "voip"
	TypePersonalNumber    NumberType = "personal_number"
	TypePager             NumberType = "pager"
	TypeUAN               NumberType = "uan"
	TypeVoicemail         NumberType = "voicemail"
	// TypeUnknown: no number range of the library matches; such a number is
	// never dialed (except the test range, see IsTestNumber).
	TypeUnknown NumberType = "unknown"
)

var numberTypes = map[phonenumbers.PhoneNumberType]NumberType{
	phonenumbers.FIXED_LINE:           TypeFixedLine,
	phonenumbers.MOBILE:               TypeMobile,
	phonenumbers.FIXED_LINE_OR_MOBILE: TypeFixedLineOrMobile,
	phonenumbers.TOLL_FREE:            TypeTollFree,
	phonenumbers.PREMIUM_RATE:         TypePremiumRate,
	phonenumbers.SHARED_COST:          TypeSharedCost,
	phonenumbers.VOIP:                 TypeVoIP,
	phonenumbers.PERSONAL_NUMBER:      TypePersonalNumber,
	phonenumbers.PAGER:                TypePager,
	phonenumbers.UAN:                  TypeUAN,
	phonenumbers.VOICEMAIL:            TypeVoicemail,
	phonenumbers.UNKNOWN:              TypeUnknown,
}

// ErrBadNumber is returned for a string that is not an E.164 number.
var ErrBadNumber = errors.New("not an E.164 phone number")

// Number is what the rules need to know about one destination, worked out
// once per check.
type Number struct {
	// E164 is the number as given ("+12125550123").
	E164 string
	// Region is the ISO 3166-1 alpha-2 region the library places the number
	// in ("US", "CA", "GG"), "001" for the international networks (+800,
	// +870, +881...), "" when no number range matches.
	Region string
	Type   NumberType
	// Test is set for the fictional range +1 555 01x xxxx; see IsTestNumber.
	Test bool
	// zones are the callee's possible time zones; nil means unknown, and
	// unknown means anywhere on Earth (see zones.go).
	zones []*time.Location
	key   uint64
}

// Zones returns the time zones the callee may be in; nil means unknown.
func (n Number) Zones() []*time.Location { return n.zones }

// Classify parses an E.164 number and works out its region, type and time
// zones with the phone-number library. It fails only for a string that is
// not E.164 at all; a number the library does not recognize comes back with
// TypeUnknown and no region, for the destination rule to refuse.
//
// It costs a few microseconds: ParseCanonical, then TypeAndRegion (the
// library's type and region in one pass, over patterns compiled once);
// see the benchmarks.
func Classify(e164 string) (Number, error) {
	key, ok := numberKey(e164)
	if !ok {
		return Number{}, fmt.Errorf("%w: %q (want +, country code, number: 8 to 16 characters)", ErrBadNumber, e164)
	}
	n := Number{E164: e164, key: key}
	if IsTestNumber(e164) {
		// The library calls the range invalid; it belongs to the NANP, and
		// no zone can be placed, which leaves calling hours to say whether
		// a number from anywhere may be called now.
		n.Region, n.Type, n.Test = "US", TypeFixedLineOrMobile, true
		return n, nil
	}
	pn, canonical, err := ParseNumber(e164, "")
	if err != nil {
		return Number{}, fmt.Errorf("%w: %q: %v", ErrBadNumber, e164, err)
	}
	if !canonical && phonenumbers.Format(pn, phonenumbers.E164) != e164 {
		// "+1 212..." with an extension or a national prefix the parser
		// dropped: the string is not the number the rules would judge.
		return Number{}, fmt.Errorf("%w: %q is not in canonical E.164 form", ErrBadNumber, e164)
	}
	t, region := TypeAndRegion(pn)
	return classifyParsed(n, pn, t, region), nil
}

// ClassifyParsed is Classify for a number the caller has parsed, typed
// and placed already, so that one parse serves both (ingest checks the
// number it normalized): pn must be what phonenumbers.Parse(e164, "")
// returns for e164, a canonical E.164 string, and t and region what
// TypeAndRegion(pn) returns. The parse and type are most of Classify's
// cost.
func ClassifyParsed(e164 string, pn *phonenumbers.PhoneNumber, t phonenumbers.PhoneNumberType, region string) (Number, error) {
	key, ok := numberKey(e164)
	if !ok || IsTestNumber(e164) {
		return Classify(e164)
	}
	return classifyParsed(Number{E164: e164, key: key}, pn, t, region), nil
}

func classifyParsed(n Number, pn *phonenumbers.PhoneNumber, t phonenumbers.PhoneNumberType, region string) Number {
	n.Type = numberTypes[t]
	if n.Type == "" {
		n.Type = TypeUnknown
	}
	if n.Type != TypeUnknown {
		n.Region = region
	}
	n.zones = zonesFor(pn, t)
	return n
}

// IsTestNumber reports whether an E.164 number is in +1 555 010 0000 -
// +1 555 019 9999, the fictional range Dialstream's dev registry, phone
// simulator and tests use. The phone-number library calls these invalid, rightly: 555 is not an
// area code in service and no NANP exchange starts with 0, so no carrier
// can route one to a subscriber and a test can never ring a real person.
// The rules treat such a number as a US number whose time zone is unknown.
func IsTestNumber(e164 string) bool {
	const prefix = "+155501"
	if len(e164) != len(prefix)+5 || !strings.HasPrefix(e164, prefix) {
		return false
	}
	for _, c := range e164[len(prefix):] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// numberKey turns "+<digits>" into its digits as an integer. E.164 numbers
// have at most 15 digits and never start with 0, so the integer identifies
// the number (and fits in 50 bits): the suppression table and the attempt
// counter key on it instead of on a string.
func numberKey(e164 string) (uint64, bool) {
	if len(e164) < 8 || len(e164) > 16 || e164[0] != '+' || e164[1] < '1' || e164[1] > '9' {
		return 0, false
	}
	var k uint64
	for i := 1; i < len(e164); i++ {
		c := e164[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		k = k*10 + uint64(c-'0')
	}
	return k, true
}

// numberString is numberKey's inverse.
func numberString(k uint64) string { return "+" + strconv.FormatUint(k, 10) }

// ValidRegion reports whether the library knows a region code ("US", "LV").
func ValidRegion(region string) bool { return supportedRegions()[region] }

var supportedRegions = sync.OnceValue(phonenumbers.GetSupportedRegions)
