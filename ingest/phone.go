package ingest

import (
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/dialstream/dialstream/internal/compliance"
)

// exampleNumber is what error messages suggest: a valid NANP number in the
// 555-01xx range reserved for fiction, so copying it rings nobody.
const exampleNumber = "+12025550123"

// maxPhoneInput bounds what is handed to the parser; no formatting of a
// 15-digit number needs more.
const maxPhoneInput = 64

// normalizePhone parses a number as a client wrote it ("+1 (202) 555-0123",
// "2025550123" with the default region, "tel:+12025550123") and returns it in
// E.164, or a message that says what is wrong and what to send instead.
func normalizePhone(s, defaultRegion string, allowTest bool) (string, string) {
	p, msg := parsePhone(s, defaultRegion, allowTest)
	return p.e164, msg
}

// phone is a number parsePhone accepted.
type phone struct {
	e164 string
	// class is what the compliance rules need to know about the number,
	// worked out from the same parse, when the client sent it in canonical
	// E.164 already (the usual case); nil otherwise, and the check then
	// classifies e164 itself. The library's parse and its type lookup were a
	// quarter of POST /v1/api/call, each done twice: here and in the
	// compliance check.
	class *compliance.Number
}

// parsePhone is normalizePhone, keeping what the compliance check needs.
func parsePhone(s, defaultRegion string, allowTest bool) (phone, string) {
	if strings.TrimSpace(s) == "" {
		return phone{}, "must not be empty; send the number to call in E.164 format, e.g. " + exampleNumber
	}
	if len(s) > maxPhoneInput {
		return phone{}, fmt.Sprintf("is too long to be a phone number (%d characters); send it in E.164 format, e.g. %s", len(s), exampleNumber)
	}
	// Canonical E.164, the usual case, is parsed without the library's
	// general parser; anything else, including what it leaves, goes to it.
	n, canonical, err := compliance.ParseNumber(s, defaultRegion)
	if err != nil {
		switch err {
		case phonenumbers.ErrInvalidCountryCode:
			return phone{}, fmt.Sprintf("%q does not start with a known country calling code; send E.164: +, country code, number, e.g. %s", s, exampleNumber)
		case phonenumbers.ErrTooShortNSN, phonenumbers.ErrTooShortAfterIDD:
			return phone{}, fmt.Sprintf("%q has too few digits to be a phone number; send E.164, e.g. %s", s, exampleNumber)
		case phonenumbers.ErrNumTooLong:
			return phone{}, fmt.Sprintf("%q has too many digits to be a phone number; send E.164, e.g. %s", s, exampleNumber)
		default:
			return phone{}, fmt.Sprintf("%q is not a phone number; send E.164: +, country code, number, e.g. %s", s, exampleNumber)
		}
	}
	if n.GetExtension() != "" {
		return phone{}, fmt.Sprintf("%q has an extension, which cannot be dialed; send the number alone in E.164, e.g. %s", s, exampleNumber)
	}
	e164 := s
	if !canonical {
		e164 = phonenumbers.Format(n, phonenumbers.E164)
	}
	// The test range first: proving it invalid walks every NANP region.
	if allowTest && isTestNumber(e164) {
		return phone{e164: e164}, ""
	}
	// A number is valid exactly when it has a type: IsValidNumber and
	// GetNumberType both place the number in a region and match it against
	// that region's ranges, and the type and region are what the compliance
	// check asks next (TestParsePhoneMatchesLibrary holds validity and type
	// to each other; compliance.TypeAndRegion is the library's two in one
	// pass).
	if t, region := compliance.TypeAndRegion(n); t != phonenumbers.UNKNOWN {
		p := phone{e164: e164}
		// Parsing "+..." does not depend on the default region, so when the
		// client sent e164 itself, n is the number Classify would parse.
		if s == e164 {
			if c, err := compliance.ClassifyParsed(e164, n, t, region); err == nil {
				p.class = &c
			}
		}
		return p, ""
	}
	cc := n.GetCountryCode()
	switch phonenumbers.IsPossibleNumberWithReason(n) {
	case phonenumbers.TOO_SHORT:
		return phone{}, fmt.Sprintf("%q is not a valid phone number: too few digits for country code +%d; send E.164, e.g. %s", s, cc, exampleNumber)
	case phonenumbers.TOO_LONG:
		return phone{}, fmt.Sprintf("%q is not a valid phone number: too many digits for country code +%d; send E.164, e.g. %s", s, cc, exampleNumber)
	case phonenumbers.INVALID_LENGTH:
		return phone{}, fmt.Sprintf("%q is not a valid phone number: wrong number of digits for country code +%d; send E.164, e.g. %s", s, cc, exampleNumber)
	case phonenumbers.INVALID_COUNTRY_CODE:
		return phone{}, fmt.Sprintf("%q does not start with a known country calling code; send E.164, e.g. %s", s, exampleNumber)
	}
	return phone{}, fmt.Sprintf("%q is not a valid phone number: no such number range for country code +%d; send E.164, e.g. %s", s, cc, exampleNumber)
}

// isTestNumber reports whether an E.164 number is in the fictional test
// range +1 555 01x xxxx (compliance.IsTestNumber). The phone-number library
// calls these invalid, rightly: 555 is not an area code in service, and a
// NANP exchange never starts with 0. That is what makes the range safe to
// accept: a carrier cannot route it to a subscriber, so a test can never ring
// a real person. (The NANP's own fictional range, NXX-555-01xx, is valid to
// the library and accepted anyway.)
func isTestNumber(e164 string) bool { return compliance.IsTestNumber(e164) }
