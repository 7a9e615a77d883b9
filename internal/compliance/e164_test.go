package compliance

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// sameAsLibrary fails t when ParseCanonical settles s differently from the
// library's parser, and reports whether it settled s.
func sameAsLibrary(t *testing.T, s string) bool {
	t.Helper()
	fast, ok := ParseCanonical(s)
	if !ok {
		return false
	}
	for _, region := range []string{"", "US", "GB"} {
		lib, err := phonenumbers.Parse(s, region)
		if err != nil {
			t.Fatalf("ParseCanonical(%q) = %v, the library (region %q) refuses it: %v", s, fast, region, err)
		}
		if !proto.Equal(fast, lib) {
			t.Fatalf("ParseCanonical(%q) = %v, the library (region %q) = %v", s, fast, region, lib)
		}
	}
	return true
}

// canonicalCorpus is every country code's example numbers of every type as
// E.164, each also with the country's national prefix or a 0 after the
// country code, a digit changed, added or dropped, and digits alone after
// every country code; plus what is not canonical E.164.
func canonicalCorpus() []string {
	rnd := rand.New(rand.NewPCG(7, 17))
	types := []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
		phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER,
		phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL}
	var out []string
	add := func(cc int, nsn string) {
		c := strconv.Itoa(cc)
		out = append(out, "+"+c+nsn, "+"+c+"0"+nsn)
		if len(nsn) > 1 {
			i := rnd.IntN(len(nsn))
			out = append(out, "+"+c+nsn[:i]+strconv.Itoa(rnd.IntN(10))+nsn[i+1:], "+"+c+nsn[:len(nsn)-1], "+"+c+nsn+strconv.Itoa(rnd.IntN(10)))
		}
	}
	regions := slices.Sorted(func(yield func(string) bool) {
		for r := range phonenumbers.GetSupportedRegions() {
			if !yield(r) {
				return
			}
		}
	})
	for _, r := range regions {
		cc := phonenumbers.GetCountryCodeForRegion(r)
		ndd := phonenumbers.GetNddPrefixForRegion(r, true)
		for _, typ := range types {
			n := phonenumbers.GetExampleNumberForType(r, typ)
			if n == nil {
				continue
			}
			nsn := phonenumbers.GetNationalSignificantNumber(n)
			add(cc, nsn)
			if ndd != "" {
				out = append(out, "+"+strconv.Itoa(cc)+ndd+nsn)
			}
		}
	}
	for cc := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		if n := phonenumbers.GetExampleNumberForNonGeoEntity(cc); n != nil {
			add(cc, phonenumbers.GetNationalSignificantNumber(n))
		}
	}
	for cc := 1; cc <= 999; cc++ {
		for l := 1; l <= 18; l++ {
			d := make([]byte, l)
			for i := range d {
				d[i] = byte('0' + rnd.IntN(10))
			}
			out = append(out, "+"+strconv.Itoa(cc)+string(d))
		}
	}
	return append(out, "", "+", "+1", "+12", "+0123456789", "12025550123", "+1 202 555 0123",
		"+1202555012x", "+1-202-555-0123", "+12025550123;ext=1", "tel:+12025550123", "+１２０２５５５０１２３",
		"+123456789012345678901", "+44020794600000000000")
}

// TestParseCanonicalMatchesLibrary: every number ParseCanonical settles is
// the number the library parses from the same text, and it settles most of
// the world's example numbers (this is what makes it worth having).
func TestParseCanonicalMatchesLibrary(t *testing.T) {
	corpus := canonicalCorpus()
	settled := 0
	for _, s := range corpus {
		if sameAsLibrary(t, s) {
			settled++
		}
	}
	examples, examplesSettled := 0, 0
	for r := range phonenumbers.GetSupportedRegions() {
		for _, typ := range []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE} {
			if n := phonenumbers.GetExampleNumberForType(r, typ); n != nil {
				examples++
				if _, ok := ParseCanonical(phonenumbers.Format(n, phonenumbers.E164)); ok {
					examplesSettled++
				}
			}
		}
	}
	t.Logf("settled %d of %d corpus strings; %d of %d example fixed-line and mobile numbers", settled, len(corpus), examplesSettled, examples)
	if examplesSettled*100 < examples*90 {
		t.Errorf("ParseCanonical settled only %d of %d example numbers in E.164; want at least 90%%", examplesSettled, examples)
	}
	for _, s := range []string{"+12025550123", "+442079460000", "+4915123456789", "+33612345678", "+918123456789"} {
		if _, ok := ParseCanonical(s); !ok {
			t.Errorf("ParseCanonical(%q) left it to the library", s)
		}
	}
	// What the library would change or refuse is left to it.
	for _, s := range []string{"+4402079460000", "+3906123456", "+1", "+12", "+0123456789", "+1 202 555 0123", "tel:+12025550123", "+999123456"} {
		if n, ok := ParseCanonical(s); ok {
			t.Errorf("ParseCanonical(%q) = %v; want it left to the library", s, n)
		}
	}
}
