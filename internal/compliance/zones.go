package compliance

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	// The zone database goes into the binary: the images are FROM scratch,
	// with no /usr/share/zoneinfo, and calling hours must not depend on
	// what the host happens to have installed.
	_ "time/tzdata"

	"github.com/nyaruka/phonenumbers"
)

// zonesFor returns the callee's possible time zones, following
// libphonenumber's PhoneNumberToTimeZonesMapper (the Go port only does the
// prefix lookup, so the rest is here):
//
//   - a number of no known type has no known zone;
//   - a geographic number (fixed line, or a mobile in a country whose mobile
//     numbers are geographic) takes the zones of its longest matching prefix:
//     +1 212 is New York, +1 701 is Denver and North Dakota's Central zone;
//   - any other number (a US toll-free number, a UK mobile) takes every zone
//     of its country calling code: +1 800 could ring anywhere in the NANP,
//     from Guam to Newfoundland.
//
// nil means unknown. An unknown zone is treated as every offset on Earth
// (anywhere, below): failing closed, since "unknown" must not mean "wherever
// would allow the call".
func zonesFor(pn *phonenumbers.PhoneNumber, t phonenumbers.PhoneNumberType) []*time.Location {
	if t == phonenumbers.UNKNOWN {
		return nil
	}
	cc := pn.GetCountryCode()
	var names []string
	var err error
	if t == phonenumbers.FIXED_LINE || t == phonenumbers.FIXED_LINE_OR_MOBILE ||
		(t == phonenumbers.MOBILE && phonenumbers.GEO_MOBILE_COUNTRIES[cc]) {
		names, err = phonenumbers.GetTimezonesForNumber(pn)
	} else {
		names, err = phonenumbers.GetTimezonesForPrefix("+" + strconv.Itoa(int(cc)))
	}
	if err != nil {
		return nil
	}
	return locations(names)
}

// locationSets caches the loaded zones of each zone list the library returns
// (a few hundred distinct lists): loading a zone parses tzdata.
var locationSets sync.Map // strings.Join(names, " ") -> []*time.Location (nil: unknown)

func locations(names []string) []*time.Location {
	key := strings.Join(names, " ")
	if v, ok := locationSets.Load(key); ok {
		return v.([]*time.Location)
	}
	locs := make([]*time.Location, 0, len(names))
	for _, name := range names {
		l, err := time.LoadLocation(name)
		if name == phonenumbers.UNKNOWN_TIMEZONE || err != nil {
			// One zone we cannot place makes the whole list unknown: an
			// allowed time must be allowed wherever the callee may be.
			locs = nil
			break
		}
		locs = append(locs, l)
	}
	locationSets.Store(key, locs)
	return locs
}

// anywhere stands for an unknown zone: every UTC offset in use, -12:00 to
// +14:00, in 15-minute steps (Nepal is +05:45, the Chatham Islands +12:45).
// A time is allowed for an unknown zone only if it is allowed at every one of
// them. With the default 08:00-21:00 that is never: an unknown zone fails
// closed. A workspace whose hours cover the whole day (the dev registry's
// demo workspace) still calls such numbers, holidays and weekdays applying
// wherever on Earth the date is one.
var anywhere = func() []*time.Location {
	var zs []*time.Location
	for off := -12 * 60; off <= 14*60; off += 15 {
		zs = append(zs, time.FixedZone(fmt.Sprintf("UTC%+03d:%02d", off/60, abs(off%60)), off*60))
	}
	return zs
}()

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
