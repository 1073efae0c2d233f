package emulator

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests in this package talk to the handler directly, with requests signed
// here, to reach what the SDK never sends.

const (
	rawID  = "AKIDrawtest"
	rawKey = "rawtestSecretKey"
)

// testClock is a clock that moves only when told to.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// authorization returns an Authorization header value.
func authorization(secretID string, ts int64, signed []string, signature string) string {
	return tc3Algorithm + " Credential=" + secretID + "/" + scopeDate(ts) + "/" + service + "/tc3_request" +
		", SignedHeaders=" + strings.Join(signed, ";") +
		", Signature=" + signature
}

// signHTTP signs r, whose body is payload, the way the official SDK does.
func signHTTP(r *http.Request, payload []byte, secretID, secretKey string, at time.Time) {
	ts := at.Unix()
	r.Header.Set("X-TC-Timestamp", strconv.FormatInt(ts, 10))
	in := canonicalInput{
		Method:  r.Method,
		Path:    r.URL.EscapedPath(),
		Query:   r.URL.RawQuery,
		Headers: map[string]string{"content-type": r.Header.Get("Content-Type"), "host": r.Host},
		Signed:  []string{"content-type", "host"},
		Payload: payload,
	}
	sig := tc3Signature(secretKey, ts, service, stringToSign(ts, service, canonicalRequest(in)))
	r.Header.Set("Authorization", authorization(secretID, ts, in.Signed, sig))
}

// newRawRequest returns a signed POST of action with body.
func newRawRequest(action, region, body string, at time.Time) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9000/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-TC-Action", action)
	r.Header.Set("X-TC-Version", APIVersion)
	r.Header.Set("X-TC-Region", region)
	signHTTP(r, []byte(body), rawID, rawKey, at)
	return r
}

// rawAnswer is a decoded API 3.0 answer.
type rawAnswer struct {
	Response struct {
		Error *struct {
			Code    string
			Message string
		}
		RequestID  string `json:"RequestId"`
		TotalCount int
	}
}

func (a rawAnswer) code() string {
	if a.Response.Error == nil {
		return ""
	}
	return a.Response.Error.Code
}

// serve runs r through e and decodes the answer, which must be HTTP 200
// JSON with a RequestId.
func serve(t testing.TB, e *Emulator, r *http.Request) (rawAnswer, string) {
	t.Helper()
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	if got, want := w.Code, http.StatusOK; got != want {
		t.Fatalf("HTTP status = %d, want %d", got, want)
	}
	if got, want := w.Header().Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var a rawAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, w.Body.String())
	}
	if a.Response.RequestID == "" {
		t.Errorf("answer has no RequestId: %s", w.Body.String())
	}
	return a, w.Body.String()
}

func mustNew(t testing.TB, cfg Config, ins ...Instance) *Emulator {
	t.Helper()
	if cfg.SecretID == "" {
		cfg.SecretID, cfg.SecretKey = rawID, rawKey
	}
	e := New(cfg)
	if err := e.Add(ins...); err != nil {
		t.Fatalf("Add: %v", err)
	}
	return e
}

func TestRawProtocolErrors(t *testing.T) {
	clock := newTestClock()
	e := mustNew(t, Config{Now: clock.Now}, Instance{ID: "ins-aaaaaaaa"})
	now := clock.Now()
	describe := func() *http.Request { return newRawRequest("DescribeInstances", "ap-guangzhou", `{}`, now) }
	tests := []struct {
		name  string
		req   func() *http.Request
		want  string
		notIn []string // must not appear in the answer
	}{
		{"Valid", describe, "", nil},
		{"MissingAuthorization", func() *http.Request {
			r := describe()
			r.Header.Del("Authorization")
			return r
		}, "AuthFailure.InvalidAuthorization", nil},
		{"MalformedAuthorization", func() *http.Request {
			r := describe()
			r.Header.Set("Authorization", "TC3-HMAC-SHA256 garbage")
			return r
		}, "AuthFailure.SignatureFailure", nil},
		{"BadSignature", func() *http.Request {
			r := describe()
			h := r.Header.Get("Authorization")
			r.Header.Set("Authorization", h[:len(h)-64]+strings.Repeat("0", 64))
			return r
		}, "AuthFailure.SignatureFailure", nil},
		{"TamperedBody", func() *http.Request {
			r := describe()
			tampered := newRawRequest("DescribeInstances", "ap-guangzhou", `{"Limit":1}`, now)
			tampered.Header = r.Header.Clone()
			return tampered
		}, "AuthFailure.SignatureFailure", nil},
		{"TamperedHost", func() *http.Request {
			r := describe()
			r.Host = "cvm.tencentcloudapi.com"
			return r
		}, "AuthFailure.SignatureFailure", nil},
		{"WrongScopeDate", func() *http.Request {
			r := describe()
			r.Header.Set("X-TC-Timestamp", strconv.FormatInt(now.Add(-48*time.Hour).Unix(), 10))
			e.window = -1 // only the scope check can catch it
			return r
		}, "AuthFailure.SignatureFailure", nil},
		{"UnknownSecretID", func() *http.Request {
			r := newRawRequest("DescribeInstances", "ap-guangzhou", `{}`, now)
			signHTTP(r, []byte(`{}`), "AKIDsomeoneelse", rawKey, now)
			return r
		}, "AuthFailure.SecretIdNotFound", nil},
		{"WrongKey", func() *http.Request {
			r := newRawRequest("DescribeInstances", "ap-guangzhou", `{}`, now)
			signHTTP(r, []byte(`{}`), rawID, "not-the-key", now)
			return r
		}, "AuthFailure.SignatureFailure", []string{rawKey, "not-the-key"}},
		{"TimestampPast", func() *http.Request {
			return newRawRequest("DescribeInstances", "ap-guangzhou", `{}`, now.Add(-5*time.Minute-time.Second))
		}, "AuthFailure.SignatureExpire", nil},
		{"TimestampFuture", func() *http.Request {
			return newRawRequest("DescribeInstances", "ap-guangzhou", `{}`, now.Add(5*time.Minute+time.Second))
		}, "AuthFailure.SignatureExpire", nil},
		{"TimestampWithinWindowPast", func() *http.Request {
			return newRawRequest("DescribeInstances", "ap-guangzhou", `{}`, now.Add(-5*time.Minute+time.Second))
		}, "", nil},
		{"TimestampWithinWindowFuture", func() *http.Request {
			return newRawRequest("DescribeInstances", "ap-guangzhou", `{}`, now.Add(5*time.Minute-time.Second))
		}, "", nil},
		{"MissingTimestamp", func() *http.Request {
			r := describe()
			r.Header.Del("X-TC-Timestamp")
			return r
		}, "MissingParameter", nil},
		{"MissingVersion", func() *http.Request {
			r := describe()
			r.Header.Del("X-TC-Version")
			return r
		}, "MissingParameter", nil},
		{"WrongVersion", func() *http.Request {
			r := describe()
			r.Header.Set("X-TC-Version", "2022-01-01")
			return r
		}, "NoSuchVersion", nil},
		{"MissingAction", func() *http.Request {
			r := describe()
			r.Header.Del("X-TC-Action")
			return r
		}, "MissingParameter", nil},
		{"UnknownAction", func() *http.Request {
			return newRawRequest("TerminateInstances", "ap-guangzhou", `{}`, now)
		}, "InvalidAction", nil},
		{"MissingRegion", func() *http.Request {
			return newRawRequest("DescribeInstances", "", `{}`, now)
		}, "MissingParameter", nil},
		{"UnknownRegion", func() *http.Request {
			return newRawRequest("DescribeInstances", "xx-nowhere", `{}`, now)
		}, "UnsupportedRegion", nil},
		{"MalformedJSON", func() *http.Request {
			return newRawRequest("DescribeInstances", "ap-guangzhou", `{"Limit":`, now)
		}, "InvalidParameter", nil},
		{"TrailingJSON", func() *http.Request {
			return newRawRequest("DescribeInstances", "ap-guangzhou", `{} {}`, now)
		}, "InvalidParameter", nil},
		{"JSONNotObject", func() *http.Request {
			return newRawRequest("DescribeInstances", "ap-guangzhou", `[1,2]`, now)
		}, "InvalidParameter", nil},
		{"EmptyBody", func() *http.Request {
			return newRawRequest("DescribeInstances", "ap-guangzhou", ``, now)
		}, "", nil},
		{"WrongType", func() *http.Request {
			return newRawRequest("DescribeInstances", "ap-guangzhou", `{"Limit":"5"}`, now)
		}, "InvalidParameter", nil},
		{"UnknownParameter", func() *http.Request {
			return newRawRequest("DescribeInstances", "ap-guangzhou", `{"Limmit":5}`, now)
		}, "UnknownParameter", nil},
		{"NotJSONContentType", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9000/", strings.NewReader(`{}`))
			r.Header.Set("Content-Type", "text/plain")
			r.Header.Set("X-TC-Action", "DescribeInstances")
			r.Header.Set("X-TC-Version", APIVersion)
			r.Header.Set("X-TC-Region", "ap-guangzhou")
			signHTTP(r, []byte(`{}`), rawID, rawKey, now)
			return r
		}, "InvalidParameter", nil},
		{"BodyTooLarge", func() *http.Request {
			body := `{"InstanceIds":["` + strings.Repeat("x", MaxBodyBytes) + `"]}`
			return newRawRequest("DescribeInstances", "ap-guangzhou", body, now)
		}, "RequestSizeLimitExceeded", nil},
		{"UnsupportedMethod", func() *http.Request {
			r := describe()
			r.Method = http.MethodPut
			return r
		}, "UnsupportedProtocol", nil},
		{"UnsignedPayload", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9000/", strings.NewReader(`{"Limit":3}`))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-TC-Action", "DescribeInstances")
			r.Header.Set("X-TC-Version", APIVersion)
			r.Header.Set("X-TC-Region", "ap-guangzhou")
			r.Header.Set("X-TC-Content-SHA256", unsignedPayload)
			signHTTP(r, []byte(unsignedPayload), rawID, rawKey, now)
			return r
		}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.window = DefaultSignatureWindow
			a, body := serve(t, e, tt.req())
			if got := a.code(); got != tt.want {
				t.Errorf("code = %q, want %q\n%s", got, tt.want, body)
			}
			for _, s := range append(tt.notIn, rawKey) {
				if strings.Contains(body, s) {
					t.Errorf("answer contains %q: %s", s, body)
				}
			}
		})
	}
}

func TestRequestIDsAreUniqueUUIDs(t *testing.T) {
	e := mustNew(t, Config{})
	seen := map[string]bool{}
	for range 1000 {
		id := e.newRequestID()
		if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[14] != '4' || id[18] != '-' || id[23] != '-' {
			t.Fatalf("RequestId %q is not UUID-shaped", id)
		}
		if seen[id] {
			t.Fatalf("RequestId %q repeated", id)
		}
		seen[id] = true
	}
	if got, want := len(seen), 1000; got != want {
		t.Errorf("distinct RequestIds = %d, want %d", got, want)
	}
}

func TestMissingKeyPairRefusesEverything(t *testing.T) {
	e := New(Config{}) // no key pair: nothing can authenticate
	r := newRawRequest("DescribeInstances", "ap-guangzhou", `{}`, time.Now())
	a, _ := serve(t, e, r)
	if got, want := a.code(), "AuthFailure.SecretIdNotFound"; got != want {
		t.Errorf("code = %q, want %q", got, want)
	}
}

func TestTokenChecked(t *testing.T) {
	e := mustNew(t, Config{SecretID: rawID, SecretKey: rawKey, Token: "session-token"})
	for _, tt := range []struct {
		name, token, want string
	}{
		{"Missing", "", "AuthFailure.TokenFailure"},
		{"Wrong", "other-token", "AuthFailure.TokenFailure"},
		{"Right", "session-token", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRawRequest("DescribeInstances", "ap-guangzhou", `{}`, time.Now())
			if tt.token != "" {
				r.Header.Set("X-TC-Token", tt.token)
			}
			a, body := serve(t, e, r)
			if got := a.code(); got != tt.want {
				t.Errorf("code = %q, want %q", got, tt.want)
			}
			if strings.Contains(body, "session-token") {
				t.Errorf("answer shows the token: %s", body)
			}
		})
	}
}

func TestParseQueryParams(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  string // JSON of the parameters, or the error code
	}{
		{"Empty", "", `{}`},
		{"Scalars", "Limit=5&Offset=10", `{"Limit":"5","Offset":"10"}`},
		{"List", "InstanceIds.0=ins-aaaaaaaa&InstanceIds.1=ins-bbbbbbbb", `{"InstanceIds":["ins-aaaaaaaa","ins-bbbbbbbb"]}`},
		{"Nested", "Filters.0.Name=zone&Filters.0.Values.0=ap-guangzhou-3&Filters.1.Name=tag%3Aenv&Filters.1.Values.0=prod",
			`{"Filters":[{"Name":"zone","Values":["ap-guangzhou-3"]},{"Name":"tag:env","Values":["prod"]}]}`},
		{"CommonParamsIgnored", "Action=DescribeInstances&Version=2017-03-12&Limit=1", `{"Limit":"1"}`},
		{"Gap", "InstanceIds.0=a&InstanceIds.2=b", "InvalidParameter"},
		{"Conflict", "Limit=1&Limit.0=2", "InvalidParameter"},
		{"Repeated", "Limit=1&Limit=2", "InvalidParameter"},
		{"EmptySegment", "Filters..Name=x", "InvalidParameter"},
		{"BadEscape", "Limit=%zz", "InvalidParameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseQueryParams(tt.query)
			var got string
			if err != nil {
				got = err.Code
			} else {
				b, _ := json.Marshal(p.m)
				got = string(b)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	start := time.Now()
	l := newLimiter(3, time.Second)
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {0, true}, {100 * time.Millisecond, true},
		{200 * time.Millisecond, false}, // 4th within the second
		{999 * time.Millisecond, false},
		{time.Second, true}, // the first two have left the window
		{time.Second, true},
		{time.Second, false}, // the one at 100ms is still in it
		{1100 * time.Millisecond, true},
	}
	for i, s := range steps {
		if got := l.allow(start.Add(s.at)); got != s.want {
			t.Errorf("step %d at %v: allow = %v, want %v", i, s.at, got, s.want)
		}
	}
	unlimited := newLimiter(-1, time.Second)
	for range 1000 {
		if !unlimited.allow(start) {
			t.Fatal("unlimited limiter refused")
		}
	}
}

func TestFaultsWithCodesShareTheRate(t *testing.T) {
	// The flag translation gives each code an equal share of the rate.
	e := mustNew(t, Config{Seed: 7})
	e.SetFaults(faultsFor(0.3, []string{"InternalError", "RequestLimitExceeded", "ResourceUnavailable"}, "", 0)...)
	counts := map[string]int{}
	const n = 30000
	for range n {
		e.mu.Lock()
		inj := e.rollFaults("DescribeInstances")
		e.mu.Unlock()
		if inj.err != nil {
			counts[inj.err.Code]++
		} else {
			counts[""]++
		}
	}
	for _, code := range []string{"InternalError", "RequestLimitExceeded", "ResourceUnavailable"} {
		if got := float64(counts[code]) / n; got < 0.08 || got > 0.12 {
			t.Errorf("share of %s = %.3f, want about 0.1", code, got)
		}
	}
	if got := float64(counts[""]) / n; got < 0.67 || got > 0.73 {
		t.Errorf("share without error = %.3f, want about 0.7", got)
	}
}

func TestStateCodesCoverEveryState(t *testing.T) {
	for state, code := range stateCodes {
		want := "UnsupportedOperation.InstanceState"
		if !strings.HasPrefix(code, want) {
			t.Errorf("state %s: code %q does not start with %s", state, code, want)
		}
		var camel string
		for word := range strings.SplitSeq(strings.ToLower(state), "_") {
			camel += strings.ToUpper(word[:1]) + word[1:]
		}
		if got := strings.TrimPrefix(code, want); got != camel {
			t.Errorf("state %s: code suffix %q, want %q", state, got, camel)
		}
	}
	if got, want := len(stateCodes), 15; got != want {
		t.Errorf("states = %d, want %d", got, want)
	}
}

func TestBodyIsNotEchoed(t *testing.T) {
	e := mustNew(t, Config{})
	secretish := "ins-" + strings.Repeat("q", 80)
	r := newRawRequest("RebootInstances", "ap-guangzhou", `{"InstanceIds":["`+secretish+`"]}`, time.Now())
	a, body := serve(t, e, r)
	if got, want := a.code(), "InvalidInstanceId.Malformed"; got != want {
		t.Errorf("code = %q, want %q", got, want)
	}
	if strings.Contains(body, secretish) {
		t.Errorf("answer echoes a long input: %s", body)
	}
	if !bytes.Contains([]byte(body), []byte("(too long)")) {
		t.Errorf("answer = %s, want the long ID replaced", body)
	}
}

func TestDialAddr(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9000}, "127.0.0.1:9000"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9000}, "127.0.0.1:9000"},
		{&net.TCPAddr{Port: 9000}, "127.0.0.1:9000"},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 43210}, "127.0.0.1:43210"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 43210}, "[::1]:43210"},
	}
	for _, tt := range tests {
		if got := dialAddr(tt.addr); got != tt.want {
			t.Errorf("dialAddr(%v) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}
