package envconfig

import (
	"testing"
	"time"
)

func TestLoaderReportsEveryProblem(t *testing.T) {
	l := FromMap(map[string]string{"N": "0", "D": "soon", "B": "maybe", "M": "x"})
	l.Required("KAFKA_BROKERS")
	l.Int("N", 1, 1, 10)
	l.Duration("D", time.Second, 0, time.Hour)
	l.Bool("B", false)
	l.OneOf("M", "a", "a", "b")
	want := "KAFKA_BROKERS: required\nN: must be >= 1, got 0\nD: must be a duration like 5s or 2m, got \"soon\"\nB: must be true or false, got \"maybe\"\nM: must be one of a, b, got \"x\""
	if err := l.Err(); err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

func TestLoaderValues(t *testing.T) {
	l := FromMap(map[string]string{"L": " a, ,b ", "N": "7", "DS": "0s,5s,5m", "F": "2.5"})
	if got := l.List("L", nil); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("list %v", got)
	}
	if l.Int("N", 1, 1, 10) != 7 || l.Int("UNSET", 3, 1, 10) != 3 || l.Float("F", 0, 0, 10) != 2.5 {
		t.Fatal("int/float")
	}
	if ds := l.Durations("DS", nil); len(ds) != 3 || ds[2] != 5*time.Minute {
		t.Fatalf("durations %v", ds)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
}
