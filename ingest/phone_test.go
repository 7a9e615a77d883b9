package ingest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"github.com/dialstream/dialstream/internal/compliance"
)

// normalizePhoneReference is normalizePhone as it was before it shared its
// parse with the compliance check (IsValidNumber for validity, nothing
// kept): the behaviour parsePhone must keep, message for message.
func normalizePhoneReference(s, defaultRegion string, allowTest bool) (string, string) {
	if strings.TrimSpace(s) == "" {
		return "", "must not be empty; send the number to call in E.164 format, e.g. " + exampleNumber
	}
	if len(s) > maxPhoneInput {
		return "", fmt.Sprintf("is too long to be a phone number (%d characters); send it in E.164 format, e.g. %s", len(s), exampleNumber)
	}
	n, err := phonenumbers.Parse(s, defaultRegion)
	if err != nil {
		switch err {
		case phonenumbers.ErrInvalidCountryCode:
			return "", fmt.Sprintf("%q does not start with a known country calling code; send E.164: +, country code, number, e.g. %s", s, exampleNumber)
		case phonenumbers.ErrTooShortNSN, phonenumbers.ErrTooShortAfterIDD:
			return "", fmt.Sprintf("%q has too few digits to be a phone number; send E.164, e.g. %s", s, exampleNumber)
		case phonenumbers.ErrNumTooLong:
			return "", fmt.Sprintf("%q has too many digits to be a phone number; send E.164, e.g. %s", s, exampleNumber)
		default:
			return "", fmt.Sprintf("%q is not a phone number; send E.164: +, country code, number, e.g. %s", s, exampleNumber)
		}
	}
	if n.GetExtension() != "" {
		return "", fmt.Sprintf("%q has an extension, which cannot be dialed; send the number alone in E.164, e.g. %s", s, exampleNumber)
	}
	e164 := phonenumbers.Format(n, phonenumbers.E164)
	if allowTest && isTestNumber(e164) {
		return e164, ""
	}
	if phonenumbers.IsValidNumber(n) {
		return e164, ""
	}
	cc := n.GetCountryCode()
	switch phonenumbers.IsPossibleNumberWithReason(n) {
	case phonenumbers.TOO_SHORT:
		return "", fmt.Sprintf("%q is not a valid phone number: too few digits for country code +%d; send E.164, e.g. %s", s, cc, exampleNumber)
	case phonenumbers.TOO_LONG:
		return "", fmt.Sprintf("%q is not a valid phone number: too many digits for country code +%d; send E.164, e.g. %s", s, cc, exampleNumber)
	case phonenumbers.INVALID_LENGTH:
		return "", fmt.Sprintf("%q is not a valid phone number: wrong number of digits for country code +%d; send E.164, e.g. %s", s, cc, exampleNumber)
	case phonenumbers.INVALID_COUNTRY_CODE:
		return "", fmt.Sprintf("%q does not start with a known country calling code; send E.164, e.g. %s", s, exampleNumber)
	}
	return "", fmt.Sprintf("%q is not a valid phone number: no such number range for country code +%d; send E.164, e.g. %s", s, cc, exampleNumber)
}

// phoneCorpus is the library's example number of every type in every
// region and international network, each as E.164, national and
// international text, with a digit changed, added or dropped, and with an
// extension; plus the test range and text that is not a number.
func phoneCorpus() []string {
	var pns []*phonenumbers.PhoneNumber
	regions := make([]string, 0, 256)
	for r := range phonenumbers.GetSupportedRegions() {
		regions = append(regions, r)
	}
	slices.Sort(regions)
	types := []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
		phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER,
		phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL}
	for _, r := range regions {
		for _, t := range types {
			if n := phonenumbers.GetExampleNumberForType(r, t); n != nil {
				pns = append(pns, n)
			}
		}
	}
	for cc := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		if n := phonenumbers.GetExampleNumberForNonGeoEntity(cc); n != nil {
			pns = append(pns, n)
		}
	}
	out := []string{"+15550101234", "+15550199999", "+1555010123", "+155501012345", "+15550201234", "", " ", "abc",
		"tel:+12025550123", "+1 (202) 555-0123", "2025550123", "+0123456789", "+999123456789", "+12025550123;ext=5",
		"+1202555012345678901", "+44 20 7946 0000", "020 7946 0000", "+390612345678", "+3906 1234 5678", "+12"}
	for _, n := range pns {
		e := phonenumbers.Format(n, phonenumbers.E164)
		last := e[len(e)-1]
		other := string(rune('0' + (last-'0'+1)%10))
		out = append(out, e, phonenumbers.Format(n, phonenumbers.NATIONAL), phonenumbers.Format(n, phonenumbers.INTERNATIONAL),
			e[:len(e)-1]+other, e+"1", e[:len(e)-1], e+" ext. 12")
	}
	return out
}

// checkParsePhone compares parsePhone with the reference for one input,
// and the classification it keeps with the compliance package's own.
func checkParsePhone(t testing.TB, s, region string, allowTest bool) (classified bool) {
	t.Helper()
	p, msg := parsePhone(s, region, allowTest)
	wantE164, wantMsg := normalizePhoneReference(s, region, allowTest)
	if p.e164 != wantE164 || msg != wantMsg {
		t.Fatalf("parsePhone(%q, %q, %v) = %q, %q; the full parser says %q, %q", s, region, allowTest, p.e164, msg, wantE164, wantMsg)
	}
	if p.class == nil {
		return false
	}
	want, err := compliance.Classify(p.e164)
	if err != nil || !reflect.DeepEqual(*p.class, want) {
		t.Fatalf("parsePhone(%q) classified %+v (zones %v); compliance.Classify says %+v (zones %v), %v",
			s, *p.class, p.class.Zones(), want, want.Zones(), err)
	}
	return true
}

// TestParsePhoneMatchesLibrary holds the shared parse to the library's full
// path: the same E.164 and the same message for every input, and, where it
// classified the number, the same classification the compliance check
// works out from scratch.
func TestParsePhoneMatchesLibrary(t *testing.T) {
	corpus := phoneCorpus()
	classified := 0
	for _, s := range corpus {
		for _, region := range []string{"US", "GB", ""} {
			for _, allowTest := range []bool{true, false} {
				if checkParsePhone(t, s, region, allowTest) {
					classified++
				}
			}
		}
	}
	// The fast path must be the one taken for E.164 input, or it saves
	// nothing: about a sixth of the inputs are valid E.164.
	t.Logf("%d of %d checks kept a classification", classified, len(corpus)*6)
	if classified < len(corpus)/2 {
		t.Fatalf("only %d of %d checks kept a classification", classified, len(corpus)*6)
	}
}

// FuzzParsePhone: go test -fuzz FuzzParsePhone ./ingest
func FuzzParsePhone(f *testing.F) {
	for _, s := range phoneCorpus()[:40] {
		f.Add(s, "US")
	}
	f.Add("+442079460000", "GB")
	f.Fuzz(func(t *testing.T, s, region string) {
		if len(region) > 3 {
			region = region[:3]
		}
		checkParsePhone(t, s, region, true)
		checkParsePhone(t, s, region, false)
	})
}
