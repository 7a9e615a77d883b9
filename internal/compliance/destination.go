package compliance

import (
	"fmt"
	"slices"
	"strings"
)

// HighRiskTypes are the number types refused unless a workspace lists them
// in allow_number_types. Toll fraud (international revenue share fraud,
// traffic pumping) pays out on calls to numbers whose caller is charged a
// share the called party collects, or which lead nowhere a person answers:
//
//   - premium_rate: the caller pays a rate the called party shares;
//   - shared_cost: the caller pays part of a rate (UK 084x, 087x; ES 901);
//   - personal_number: "follow me" numbers at a rate the holder sets (UK 070
//     is the classic fraud range);
//   - uan: company numbers with rates that vary by country, from local to
//     premium;
//   - pager and voicemail: no person can answer an AI agent there, and the
//     access ranges are known pumping targets.
//
// Not high risk, always allowed: fixed_line, mobile, fixed_line_or_mobile,
// voip (real people have VoIP numbers, billed like geographic ones) and
// toll_free (the called party pays). A number of type unknown (no valid range)
// is refused always: a range the library does not know cannot be judged, and
// a typo is not worth a call.
var HighRiskTypes = []NumberType{TypePremiumRate, TypeSharedCost, TypePersonalNumber, TypeUAN, TypePager, TypeVoicemail}

// Destinations says where a workspace may call.
type Destinations struct {
	// Countries are the regions calls may go to ("US", "CA"); by default
	// the workspace's home country only.
	Countries []string
	// AllowTypes are the HighRiskTypes the workspace allows.
	AllowTypes []NumberType
}

// Allowed reports whether a call to n may be placed, and otherwise why not,
// naming the rule and the registry setting that would change it.
func (d Destinations) Allowed(n Number) (bool, string) {
	if n.Type == TypeUnknown {
		return false, fmt.Sprintf("%s is not in any number range the phone-number library knows; only valid numbers are dialed", n.E164)
	}
	var why []string
	if !slices.Contains(d.Countries, n.Region) {
		where := "in " + n.Region
		if n.Region == "001" {
			where = "on an international network (no country)"
		}
		why = append(why, fmt.Sprintf("%s, and the workspace calls only %s (compliance.allowed_countries)", where, strings.Join(d.Countries, ", ")))
	}
	if slices.Contains(HighRiskTypes, n.Type) && !slices.Contains(d.AllowTypes, n.Type) {
		why = append(why, fmt.Sprintf("a %s number, which the workspace does not allow (compliance.allow_number_types)", n.Type))
	}
	if len(why) == 0 {
		return true, ""
	}
	return false, n.E164 + " is " + strings.Join(why, "; and ")
}
