package obs

import "testing"

func TestMaskPhone(t *testing.T) {
	for in, want := range map[string]string{"+15550100001": "********0001", "123": "***", "": ""} {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}
