package agent

import (
	"strings"
)

// What the reference agent says besides the greeting. Fixed lines: the agent
// has no language model, and none of them may carry anything from the
// dispatch but what render puts in.
const (
	defaultGreeting = "Hello {firstName}, this is an automated call from Dialstream."
	lineGoodbye     = "Thank you for your time. Goodbye."
	lineTransfer    = "One moment, I am transferring you now."
	// lineMessage is what messageClip says.
	lineMessage = "Sorry we missed you. This is Dialstream. We will call again later. Goodbye."
)

// render fills a greeting template: {name} becomes the dynamic variable
// name. Only the dynamic variables are looked up, never the dispatch's
// metadata, which is not even an argument here: what the agent says cannot
// carry it.
//
// A placeholder with no variable becomes empty and the space and comma
// around it are tidied ("Hello {firstName}, ..." without firstName reads
// "Hello, ..."): a callee hearing "Hello , " or "{firstName}" is worse than a
// greeting without a name. A brace that opens no placeholder stays as text.
func render(tmpl string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); {
		if tmpl[i] == '{' {
			if end := strings.IndexByte(tmpl[i+1:], '}'); end > 0 && isVarName(tmpl[i+1:i+1+end]) {
				b.WriteString(vars[tmpl[i+1:i+1+end]])
				i += end + 2
				continue
			}
		}
		b.WriteByte(tmpl[i])
		i++
	}
	return tidy(b.String())
}

// isVarName matches the dynamic variable names the request schema allows
// ([A-Za-z_][A-Za-z0-9_.-]{0,63}).
func isVarName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '.' || r == '-'):
		default:
			return false
		}
	}
	return true
}

// tidy collapses runs of spaces and drops a space before punctuation.
func tidy(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for _, p := range []string{",", ".", "!", "?", ";", ":"} {
		s = strings.ReplaceAll(s, " "+p, p)
	}
	return s
}

// wantsTransfer says whether the callee's reply asks for a person. The
// reference agent has no language model; these words are its whole
// understanding, and they are enough for the phone simulator's callee.
func wantsTransfer(reply string) bool {
	r := strings.ToLower(reply)
	for _, w := range []string{"transfer", "person", "human", "representative", "operator"} {
		if strings.Contains(r, w) {
			return true
		}
	}
	return false
}
