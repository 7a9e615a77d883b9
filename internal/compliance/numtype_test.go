package compliance

import (
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// typeAndRegionAsLibrary fails the test when TypeAndRegion of what the
// library parses s to (with default region "US") differs from the
// library's GetNumberType and GetRegionCodeForNumber; it reports the
// library's type, or false when the library does not parse s.
func typeAndRegionAsLibrary(t *testing.T, s string) (phonenumbers.PhoneNumberType, bool) {
	t.Helper()
	pn, err := phonenumbers.Parse(s, "US")
	if err != nil {
		return 0, false
	}
	wantType, wantRegion := phonenumbers.GetNumberType(pn), phonenumbers.GetRegionCodeForNumber(pn)
	gotType, gotRegion := TypeAndRegion(pn)
	if gotType != wantType || gotRegion != wantRegion {
		t.Fatalf("TypeAndRegion(%q = %v) = %v, %q; the library: %v, %q", s, pn, gotType, gotRegion, wantType, wantRegion)
	}
	return wantType, true
}

// TypeAndRegion equals the library on every string of the canonical corpus
// (every region's example numbers of every type, altered, and random
// digits after every calling code), parsed as the library parses them
// (Italian leading zeros and national prefixes included), and on numbers
// with leading zeros set by hand (around the library's clamp at 17).
func TestTypeAndRegionMatchesLibrary(t *testing.T) {
	parsed, typed := 0, 0
	for _, s := range canonicalCorpus() {
		typ, ok := typeAndRegionAsLibrary(t, s)
		if ok {
			parsed++
			if typ != phonenumbers.UNKNOWN {
				typed++
			}
		}
	}
	t.Logf("%d corpus strings parsed and compared, %d of them with a type", parsed, typed)
	// The corpus gives about 4,000; far fewer would mean it no longer
	// holds the typed numbers the comparison is for.
	if typed < 2500 {
		t.Fatalf("only %d of %d compared numbers have a type: the corpus does not exercise the type search", typed, parsed)
	}
	for _, zeros := range []int32{-1, 0, 1, 2, 3, 16, 17, 18, 40} {
		for _, cc := range []int32{39, 1, 44, 225, 800} {
			pn := &phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: new(uint64(612345678)), ItalianLeadingZero: new(true), NumberOfLeadingZeros: &zeros}
			wt, wr := phonenumbers.GetNumberType(pn), phonenumbers.GetRegionCodeForNumber(pn)
			if gt, gr := TypeAndRegion(pn); gt != wt || gr != wr {
				t.Fatalf("TypeAndRegion(%v) = %v, %q; the library: %v, %q", pn, gt, gr, wt, wr)
			}
		}
	}
	// An unknown calling code goes to the library.
	cc := int32(999)
	if typ, region := TypeAndRegion(&phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: new(uint64(123456))}); typ != phonenumbers.UNKNOWN || region != "" {
		t.Fatalf("unknown code: %v, %q", typ, region)
	}
}

func BenchmarkTypeAndRegion(b *testing.B) {
	for _, s := range []string{"+12025550123", "+442079460000", "+18095551234"} {
		pn, err := phonenumbers.Parse(s, "")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s+"/library", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = phonenumbers.GetNumberType(pn)
				_ = phonenumbers.GetRegionCodeForNumber(pn)
			}
		})
		b.Run(s+"/TypeAndRegion", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = TypeAndRegion(pn)
			}
		})
	}
}
