package agent

import "testing"

func TestRender(t *testing.T) {
	vars := map[string]string{"firstName": "Ada", "last.name": "Lovelace", "city": "London"}
	for _, tt := range []struct{ tmpl, want string }{
		{"Hello {firstName}, this is Dialstream.", "Hello Ada, this is Dialstream."},
		{"Hello {firstName} {last.name} from {city}!", "Hello Ada Lovelace from London!"},
		// A variable the request did not send: the greeting still reads well.
		{"Hello {nickname}, this is Dialstream.", "Hello, this is Dialstream."},
		{"Hi {nickname} {firstName}.", "Hi Ada."},
		// Braces that are no placeholder stay as they are.
		{"Press {1} or {} or {a b}, {unclosed", "Press {1} or {} or {a b}, {unclosed"},
		{"{firstName}{firstName}", "AdaAda"},
		{"", ""},
	} {
		if got := render(tt.tmpl, vars); got != tt.want {
			t.Errorf("render(%q) = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}

// A value is inserted as text, never expanded again: a variable cannot pull
// in another variable's value or anything else.
func TestRenderDoesNotExpandValues(t *testing.T) {
	got := render("Hello {firstName}", map[string]string{"firstName": "{secret}", "secret": "x"})
	if got != "Hello {secret}" {
		t.Fatalf("got %q", got)
	}
}

func TestWantsTransfer(t *testing.T) {
	for reply, want := range map[string]bool{
		"Could you transfer me to a person, please?": true,
		"I want to talk to a HUMAN":                  true,
		"Yes, this is me. Thanks for calling.":       false,
		"":                                           false,
	} {
		if got := wantsTransfer(reply); got != want {
			t.Errorf("wantsTransfer(%q) = %v, want %v", reply, got, want)
		}
	}
}
