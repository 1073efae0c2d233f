package bot

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// The example request of Slack's "Verifying requests from Slack" guide.
const (
	vectorSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	vectorTS     = "1531420618"
	vectorBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	vectorSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func TestSignOfficialVector(t *testing.T) {
	got := Sign(vectorSecret, vectorTS, []byte(vectorBody))
	if got != vectorSig {
		t.Fatalf("Sign = %s, want %s", got, vectorSig)
	}
}

func TestVerify(t *testing.T) {
	at := time.Unix(1531420618, 0)
	headers := func(sig, ts string) http.Header {
		h := http.Header{}
		if sig != "" {
			h.Set(HeaderSignature, sig)
		}
		if ts != "" {
			h.Set(HeaderTimestamp, ts)
		}
		return h
	}
	body := []byte(vectorBody)
	tests := []struct {
		name   string
		h      http.Header
		body   []byte
		now    time.Time
		reason string // "" for accepted
	}{
		{"OfficialVector", headers(vectorSig, vectorTS), body, at, ""},
		{"FourMinutesLate", headers(vectorSig, vectorTS), body, at.Add(4 * time.Minute), ""},
		{"FourMinutesEarly", headers(vectorSig, vectorTS), body, at.Add(-4 * time.Minute), ""},
		{"MissingSignature", headers("", vectorTS), body, at, "missing"},
		{"MissingTimestamp", headers(vectorSig, ""), body, at, "missing"},
		{"WrongVersion", headers("v1="+vectorSig[3:], vectorTS), body, at, "malformed"},
		{"NotHex", headers("v0=zz"+vectorSig[5:], vectorTS), body, at, "malformed"},
		{"Short", headers(vectorSig[:20], vectorTS), body, at, "malformed"},
		{"TimestampNotNumber", headers(vectorSig, "yesterday"), body, at, "malformed"},
		{"Stale", headers(vectorSig, vectorTS), body, at.Add(5*time.Minute + time.Second), "stale"},
		{"Future", headers(vectorSig, vectorTS), body, at.Add(-5*time.Minute - time.Second), "future"},
		{"BodyAltered", headers(vectorSig, vectorTS), append([]byte(vectorBody), '&'), at, "mismatch"},
		{"OtherTimestampSigned", headers(vectorSig, strconv.Itoa(1531420619)), body, at, "mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(vectorSecret, tt.h, tt.body, tt.now)
			got := ""
			if err != nil {
				var se *SignatureError
				if !errors.As(err, &se) {
					t.Fatalf("Verify error %v is not a *SignatureError", err)
				}
				got = se.Reason
			}
			if got != tt.reason {
				t.Errorf("Verify refused with %q, want %q", got, tt.reason)
			}
		})
	}
}

func TestVerifyWrongSecret(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderSignature, vectorSig)
	h.Set(HeaderTimestamp, vectorTS)
	err := Verify("another secret", h, []byte(vectorBody), time.Unix(1531420618, 0))
	if got, want := signatureReason(err), "mismatch"; got != want {
		t.Fatalf("reason = %q, want %q", got, want)
	}
}

func BenchmarkVerify(b *testing.B) {
	h := http.Header{}
	h.Set(HeaderSignature, vectorSig)
	h.Set(HeaderTimestamp, vectorTS)
	body := []byte(vectorBody)
	at := time.Unix(1531420618, 0)
	for b.Loop() {
		if err := Verify(vectorSecret, h, body, at); err != nil {
			b.Fatal(err)
		}
	}
}
