package compliance

import (
	"regexp"
	"strconv"
	"sync"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// ParseCanonical parses a number written in canonical E.164 ("+", country
// code, national number, digits only: how clients nearly always send it)
// without the phone-number library's general parser, and reports false for
// anything it does not settle; the caller then asks phonenumbers.Parse,
// which decides. When it reports true, the number is what
// phonenumbers.Parse(s, any region) returns (TestParseCanonicalMatchesLibrary
// and FuzzParseCanonical hold the two to each other).
//
// The general parser runs a dozen regular expressions to find the number in
// free text (extensions, "tel:" URIs, punctuation, a second number) and was
// 40% of what POST /v1/api/call spent on the number. For "+" and digits all
// that is settled; what is left is the library's own steps for such input:
// the country code is the first one to three digits that name one
// (extractCountryCode; the codes are prefix-free), and the rest is the
// national number unless the country's national prefix could be stripped
// from it (maybeStripNationalPrefixAndCarrierCode) or it starts with 0
// (Italian leading zeros): those go to the library.
func ParseCanonical(s string) (*phonenumbers.PhoneNumber, bool) {
	// "+", at least one digit of country code and the library's minimum of
	// two national digits; at most 3 + 17 digits.
	if len(s) < 4 || len(s) > 21 || s[0] != '+' || s[1] == '0' {
		return nil, false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return nil, false
		}
	}
	prefixes := nationalPrefixes()
	for n := 1; n <= 3 && 1+n < len(s); n++ {
		cc, _ := strconv.Atoi(s[1 : 1+n])
		prefix, known := prefixes[cc]
		if !known {
			continue
		}
		nsn := s[1+n:]
		if len(nsn) < minNSN || len(nsn) > maxNSN || nsn[0] == '0' || prefix != nil && prefix.MatchString(nsn) {
			return nil, false
		}
		v, err := strconv.ParseUint(nsn, 10, 64)
		if err != nil {
			return nil, false
		}
		return &phonenumbers.PhoneNumber{CountryCode: proto.Int32(int32(cc)), NationalNumber: proto.Uint64(v)}, true
	}
	return nil, false
}

// ParseNumber is ParseCanonical, then the library's parser for whatever it
// leaves; canonical says the first settled it (then s is the number's E.164
// form as it stands).
func ParseNumber(s, defaultRegion string) (pn *phonenumbers.PhoneNumber, canonical bool, err error) {
	if pn, ok := ParseCanonical(s); ok {
		return pn, true, nil
	}
	pn, err = phonenumbers.Parse(s, defaultRegion)
	return pn, false, err
}

// The library's bounds on a national significant number
// (MIN_LENGTH_FOR_NSN, MAX_LENGTH_FOR_NSN).
const (
	minNSN = 2
	maxNSN = 17
)

// nationalPrefixes maps every country calling code the library knows
// (GetSupportedCallingCodes: the keys of the map extractCountryCode looks
// codes up in) to the national-prefix pattern its parser tries to strip from
// the number after it (national_prefix_for_parsing of the code's main
// region, or of the non-geographic entity), anchored as the library anchors
// it; nil when the country has none. A code whose metadata
// is not found, or whose pattern Go cannot compile, maps to a pattern that
// matches everything, which sends its numbers to the library.
var nationalPrefixes = sync.OnceValue(func() map[int]*regexp.Regexp {
	byID, nonGeo := metadataMaps()
	everything := regexp.MustCompile("")
	m := make(map[int]*regexp.Regexp, 256)
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		main := phonenumbers.GetRegionCodeForCountryCode(cc)
		md := byID[main]
		if main == nonGeoRegion {
			md = nonGeo[cc]
		}
		switch p := md.GetNationalPrefixForParsing(); {
		case md == nil || md.GetCountryCode() != int32(cc):
			m[cc] = everything
		case p == "":
			m[cc] = nil
		default:
			re, err := regexp.Compile("^(?:" + p + ")")
			if err != nil {
				re = everything
			}
			m[cc] = re
		}
	}
	return m
})

// metadataMaps is the library's metadata by region code (byID) and, for
// the international networks, by calling code (nonGeo); both empty when
// the library cannot load it (then every number goes to the library).
func metadataMaps() (byID map[string]*phonenumbers.PhoneMetadata, nonGeo map[int]*phonenumbers.PhoneMetadata) {
	byID, nonGeo = map[string]*phonenumbers.PhoneMetadata{}, map[int]*phonenumbers.PhoneMetadata{}
	if coll, err := phonenumbers.MetadataCollection(); err == nil {
		for _, md := range coll.GetMetadata() {
			if md.GetId() == nonGeoRegion {
				nonGeo[int(md.GetCountryCode())] = md
			} else {
				byID[md.GetId()] = md
			}
		}
	}
	return byID, nonGeo
}

// nonGeoRegion is the library's region code for the international networks
// (REGION_CODE_FOR_NON_GEO_ENTITY).
const nonGeoRegion = "001"
