package schemas

// Clip cuts s to at most n bytes, on a rune boundary, so free text (an error,
// a LiveKit reason, a receiver's answer) never makes a record fail a schema's
// maxLength or carry half a character.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // s[n] continues a rune: cut before its start
		n--
	}
	return s[:n]
}
