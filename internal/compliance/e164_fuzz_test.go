package compliance

import "testing"

// FuzzParseCanonical: whatever ParseCanonical settles, the library parses
// to the same number; and whatever the library parses, TypeAndRegion types
// and places as the library does.
func FuzzParseCanonical(f *testing.F) {
	// Every 100th string of the test's corpus: the seeds run before the
	// fuzzing does, and CI fuzzes each target for a few seconds.
	corpus := canonicalCorpus()
	for i := 0; i < len(corpus); i += 100 {
		f.Add(corpus[i])
	}
	f.Fuzz(func(t *testing.T, s string) {
		sameAsLibrary(t, s)
		typeAndRegionAsLibrary(t, s)
	})
}
