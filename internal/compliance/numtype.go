package compliance

import (
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// TypeAndRegion is phonenumbers.GetNumberType and
// phonenumbers.GetRegionCodeForNumber of pn in one pass
// (TestTypeAndRegionMatchesLibrary and FuzzParseCanonical hold it to the
// two).
//
// The library's GetNumberType first finds the region (for a code shared by
// several regions, +1 above all, by matching the number against each
// candidate region's ranges until one has a type), then matches the number
// against that region's ranges again; and the region the compliance rules
// need is a third search. Each match also builds its pattern string and
// looks it up in a locked cache, and matches it twice. Here the patterns are
// compiled once per range, and the region search's type is the answer.
func TypeAndRegion(pn *phonenumbers.PhoneNumber) (phonenumbers.PhoneNumberType, string) {
	regions, known := regionIndex()[pn.GetCountryCode()]
	switch {
	case !known:
		// No region (an unknown code) or one this index could not take:
		// the library decides.
		return phonenumbers.GetNumberType(pn), phonenumbers.GetRegionCodeForNumber(pn)
	case len(regions) == 1:
		return regions[0].typeOf(nationalSignificantNumber(pn)), regions[0].code
	}
	nsn := nationalSignificantNumber(pn)
	for _, r := range regions {
		if r.leading != nil {
			if r.leading.MatchString(nsn) {
				return r.typeOf(nsn), r.code
			}
		} else if t := r.typeOf(nsn); t != phonenumbers.UNKNOWN {
			return t, r.code
		}
	}
	return phonenumbers.UNKNOWN, ""
}

// nationalSignificantNumber is phonenumbers.GetNationalSignificantNumber:
// the Italian leading zeros (at most maxNSN), then the national number.
func nationalSignificantNumber(pn *phonenumbers.PhoneNumber) string {
	nn := strconv.FormatUint(pn.GetNationalNumber(), 10)
	if z := int(pn.GetNumberOfLeadingZeros()); pn.GetItalianLeadingZero() && z > 0 {
		return strings.Repeat("0", min(z, maxNSN)) + nn
	}
	return nn
}

// region is one region's metadata as the type and region searches read it.
type region struct {
	code string
	md   *phonenumbers.PhoneMetadata
	// leading is the region's leading-digits pattern, anchored at the
	// start as the library anchors it; nil when it has none.
	leading *regexp.Regexp
	// general is the region's whole range; special its special types in
	// the order getNumberTypeHelper tries them; then fixed line and mobile.
	general       desc
	special       []typedDesc
	fixed, mobile desc
}

type typedDesc struct {
	typ phonenumbers.PhoneNumberType
	desc
}

// desc is one number range: its possible lengths and its national number
// pattern, anchored at both ends as the library anchors it.
type desc struct {
	lengths []int32
	re      *regexp.Regexp
}

// matches is the library's isNumberMatchingDesc: a possible length (when
// the range lists any) and the whole number matching the pattern. A range
// the metadata lacks matches nothing but "", which no number is.
func (d desc) matches(nsn string) bool {
	if len(d.lengths) > 0 {
		ok := false
		for _, l := range d.lengths {
			if int32(len(nsn)) == l {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return d.re.MatchString(nsn)
}

// typeOf is the library's getNumberTypeHelper.
func (r *region) typeOf(nsn string) phonenumbers.PhoneNumberType {
	if !r.general.matches(nsn) {
		return phonenumbers.UNKNOWN
	}
	for _, d := range r.special {
		if d.matches(nsn) {
			return d.typ
		}
	}
	if r.fixed.matches(nsn) {
		if r.md.GetSameMobileAndFixedLinePattern() || r.mobile.matches(nsn) {
			return phonenumbers.FIXED_LINE_OR_MOBILE
		}
		return phonenumbers.FIXED_LINE
	}
	if !r.md.GetSameMobileAndFixedLinePattern() && r.mobile.matches(nsn) {
		return phonenumbers.MOBILE
	}
	return phonenumbers.UNKNOWN
}

// regionIndex maps every calling code to its regions, in the library's
// order (GetRegionCodesForCountryCode, which the region search walks),
// each with its metadata compiled; the non-geographic entity "001" with the
// code's own metadata. A code with a region whose metadata is missing or
// has a pattern Go cannot compile is left out, so the library answers for
// its numbers.
var regionIndex = sync.OnceValue(func() map[int32][]*region {
	byID, nonGeo := metadataMaps()
	out := make(map[int32][]*region, 256)
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		for _, code := range phonenumbers.GetRegionCodesForCountryCode(cc) {
			md := byID[code]
			if code == nonGeoRegion {
				md = nonGeo[cc]
			}
			r, ok := compileRegion(code, md)
			if !ok {
				out[int32(cc)] = nil
				break
			}
			out[int32(cc)] = append(out[int32(cc)], r)
		}
		if len(out[int32(cc)]) == 0 {
			delete(out, int32(cc))
		}
	}
	return out
})

// compileRegion compiles a region's patterns; false when its metadata is
// missing or a pattern does not compile.
func compileRegion(code string, md *phonenumbers.PhoneMetadata) (*region, bool) {
	r := &region{code: code, md: md}
	if md == nil {
		return nil, false
	}
	ok := true
	compile := func(p string) *regexp.Regexp {
		re, err := regexp.Compile(p)
		if err != nil {
			ok = false
		}
		return re
	}
	if ld := md.GetLeadingDigits(); ld != "" {
		r.leading = compile("^(?:" + ld + ")")
	}
	d := func(nd *phonenumbers.PhoneNumberDesc) desc {
		return desc{lengths: nd.GetPossibleLength(), re: compile("^(?:" + nd.GetNationalNumberPattern() + ")$")}
	}
	r.general, r.fixed, r.mobile = d(md.GetGeneralDesc()), d(md.GetFixedLine()), d(md.GetMobile())
	r.special = []typedDesc{
		{phonenumbers.PREMIUM_RATE, d(md.GetPremiumRate())},
		{phonenumbers.TOLL_FREE, d(md.GetTollFree())},
		{phonenumbers.SHARED_COST, d(md.GetSharedCost())},
		{phonenumbers.VOIP, d(md.GetVoip())},
		{phonenumbers.PERSONAL_NUMBER, d(md.GetPersonalNumber())},
		{phonenumbers.PAGER, d(md.GetPager())},
		{phonenumbers.UAN, d(md.GetUan())},
		{phonenumbers.VOICEMAIL, d(md.GetVoicemail())},
	}
	return r, ok
}
