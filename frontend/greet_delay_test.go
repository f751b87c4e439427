package frontend

import (
	"testing"
	"time"
)

func TestGreetDelayFor(t *testing.T) {
	gl := func(state GreylistState) Verdict {
		return Verdict{Action: Pass, Greylist: GreylistResult{State: state}}
	}
	greylisted := Verdict{Action: Refuse, By: ByGreylist, Reply: Reply{Code: 451}, Greylist: GreylistResult{State: GreylistRefused}}
	denied := Verdict{Action: Refuse, By: ByDenyList, Reply: Reply{Code: 554}}
	on := DialogueConfig{GreetDelay: time.Second}
	atGreeting := DialogueConfig{GreetDelay: time.Second, RefuseAt: AtGreeting}
	for _, tc := range []struct {
		name string
		cfg  DialogueConfig
		v    Verdict
		want bool
	}{
		{"off", DialogueConfig{}, Verdict{Action: Pass}, false},
		{"pass", on, Verdict{Action: Pass}, true},
		{"trusted", on, Verdict{Action: Trusted}, false},
		{"greylist retry passed", on, gl(GreylistRetry), false},
		{"greylist known", on, gl(GreylistPassed), false},
		{"greylist skip list", on, gl(GreylistSkipped), true},
		{"greylist failed", on, gl(GreylistError), true},
		{"greylisted", on, greylisted, true},
		{"greylisted, refused at the greeting", atGreeting, greylisted, false},
		{"denied", on, denied, false},
	} {
		if got := tc.cfg.greetDelayFor(tc.v); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
