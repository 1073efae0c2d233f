package emulator

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestV1OfficialExample checks the v1 signer against the worked HmacSHA1
// example of Tencent Cloud's signature documentation.
func TestV1OfficialExample(t *testing.T) {
	form := url.Values{
		"Action":        {"DescribeInstances"},
		"InstanceIds.0": {"ins-09dx96dg"},
		"Limit":         {"20"},
		"Nonce":         {"11886"},
		"Offset":        {"0"},
		"Region":        {"ap-guangzhou"},
		"SecretId":      {"AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"},
		"Timestamp":     {"1465185768"},
		"Version":       {"2017-03-12"},
		"Signature":     {"left out of the string to sign"},
	}
	sts := v1StringToSign("GET", "cvm.tencentcloudapi.com", "/", form)
	want := "GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Limit=20&Nonce=11886&Offset=0" +
		"&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE&Timestamp=1465185768&Version=2017-03-12"
	if got := sts; got != want {
		t.Errorf("string to sign = %q, want %q", got, want)
	}
	if got, want := v1Signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", methodHmacSHA1, sts), "EliP9YW3pW28FpsEdkXt/+WcGeI="; got != want {
		t.Errorf("HmacSHA1 signature = %s, want %s", got, want)
	}
	if got, other := v1Signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", methodHmacSHA256, sts), "EliP9YW3pW28FpsEdkXt/+WcGeI="; got == other || len(got) != 44 {
		t.Errorf("HmacSHA256 signature = %s, want a different 32-byte base64 MAC", got)
	}
}

// v1Form returns the parameters of a v1-signed DescribeInstances at
// time at, before signing.
func v1Form(at time.Time) url.Values {
	return url.Values{
		"Action":          {"DescribeInstances"},
		"Version":         {APIVersion},
		"Region":          {"ap-guangzhou"},
		"Timestamp":       {strconv.FormatInt(at.Unix(), 10)},
		"Nonce":           {"4242"},
		"SecretId":        {rawID},
		"SignatureMethod": {methodHmacSHA256},
		"Limit":           {"5"},
	}
}

// signV1 sets form's Signature for a request to host with key.
func signV1(method, host string, form url.Values, key string) {
	form.Del("Signature")
	sm := form.Get("SignatureMethod")
	if sm == "" {
		sm = methodHmacSHA1
	}
	form.Set("Signature", v1Signature(key, sm, v1StringToSign(method, host, "/", form)))
}

// newV1Request returns a request carrying form, as a query (GET) or a
// form body (POST).
func newV1Request(method string, form url.Values) *http.Request {
	if method == http.MethodGet {
		return httptest.NewRequest(method, "http://127.0.0.1:9000/?"+form.Encode(), nil)
	}
	r := httptest.NewRequest(method, "http://127.0.0.1:9000/", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func TestV1ProtocolErrors(t *testing.T) {
	clock := newTestClock()
	e := mustNew(t, Config{Now: clock.Now}, Instance{ID: "ins-aaaaaaaa"})
	now := clock.Now()
	const host = "127.0.0.1:9000"
	at := func(d time.Duration) func(url.Values) {
		return func(f url.Values) { f.Set("Timestamp", strconv.FormatInt(now.Add(d).Unix(), 10)) }
	}
	set := func(name, value string) func(url.Values) { return func(f url.Values) { f.Set(name, value) } }
	del := func(name string) func(url.Values) { return func(f url.Values) { f.Del(name) } }
	tests := []struct {
		name      string
		before    func(url.Values) // edits before signing
		host, key string           // signed with; default host and rawKey
		otherVerb bool             // signed for the other HTTP method
		after     func(url.Values) // edits after signing
		unsigned  bool
		want      string
	}{
		{name: "Valid"},
		{name: "HmacSHA1ByDefault", before: del("SignatureMethod")},
		{name: "HmacSHA1", before: set("SignatureMethod", methodHmacSHA1)},
		{name: "HostWithoutPort", host: "127.0.0.1"},
		{name: "OtherHost", host: "cvm.tencentcloudapi.com", want: "AuthFailure.SignatureFailure"},
		{name: "OtherHTTPMethod", otherVerb: true, want: "AuthFailure.SignatureFailure"},
		{name: "WrongKey", key: "not-the-key", want: "AuthFailure.SignatureFailure"},
		{name: "TamperedParameter", after: set("Limit", "6"), want: "AuthFailure.SignatureFailure"},
		{name: "SignatureMethodSwapped", after: set("SignatureMethod", methodHmacSHA1), want: "AuthFailure.SignatureFailure"},
		{name: "UnknownSignatureMethod", before: set("SignatureMethod", "HmacMD5"), want: "AuthFailure.SignatureFailure"},
		{name: "TC3AsSignatureMethod", before: set("SignatureMethod", tc3Algorithm), want: "AuthFailure.SignatureFailure"},
		{name: "UnknownSecretID", before: set("SecretId", "AKIDsomeoneelse"), want: "AuthFailure.SecretIdNotFound"},
		{name: "MissingSecretID", before: del("SecretId"), want: "MissingParameter"},
		{name: "TimestampPast", before: at(-5*time.Minute - time.Second), want: "AuthFailure.SignatureExpire"},
		{name: "TimestampFuture", before: at(5*time.Minute + time.Second), want: "AuthFailure.SignatureExpire"},
		{name: "TimestampWithinWindow", before: at(-5*time.Minute + time.Second)},
		{name: "MissingTimestamp", before: del("Timestamp"), want: "MissingParameter"},
		{name: "BadTimestamp", before: set("Timestamp", "soon"), want: "InvalidParameterValue"},
		{name: "MissingNonce", before: del("Nonce"), want: "MissingParameter"},
		{name: "BadNonce", before: set("Nonce", "-1"), want: "InvalidParameterValue"},
		{name: "RepeatedCommonParameter", before: func(f url.Values) { f.Add("Region", "ap-shanghai") }, want: "InvalidParameter"},
		{name: "MissingVersion", before: del("Version"), want: "MissingParameter"},
		{name: "WrongVersion", before: set("Version", "2022-01-01"), want: "NoSuchVersion"},
		{name: "MissingAction", before: del("Action"), want: "MissingParameter"},
		{name: "UnknownAction", before: set("Action", "TerminateInstances"), want: "InvalidAction"},
		{name: "MissingRegion", before: del("Region"), want: "MissingParameter"},
		{name: "UnknownParameter", before: set("Limmit", "5"), want: "UnknownParameter"},
		{name: "Unsigned", unsigned: true, want: "AuthFailure.InvalidAuthorization"},
	}
	for _, verb := range []string{http.MethodPost, http.MethodGet} {
		for _, tt := range tests {
			t.Run(verb+"/"+tt.name, func(t *testing.T) {
				f := v1Form(now)
				if tt.before != nil {
					tt.before(f)
				}
				if !tt.unsigned {
					signVerb := verb
					if tt.otherVerb {
						signVerb = map[string]string{http.MethodGet: http.MethodPost, http.MethodPost: http.MethodGet}[verb]
					}
					signV1(signVerb, cmp.Or(tt.host, host), f, cmp.Or(tt.key, rawKey))
				}
				if tt.after != nil {
					tt.after(f)
				}
				a, body := serve(t, e, newV1Request(verb, f))
				if got := a.code(); got != tt.want {
					t.Errorf("code = %q, want %q\n%s", got, tt.want, body)
				}
				if strings.Contains(body, rawKey) || strings.Contains(body, "not-the-key") {
					t.Errorf("answer shows a key: %s", body)
				}
				if tt.want == "MissingParameter" && strings.Contains(body, "X-TC-") {
					t.Errorf("a v1 request is told about a header: %s", body)
				}
			})
		}
	}
}

func TestV1TokenChecked(t *testing.T) {
	e := mustNew(t, Config{SecretID: rawID, SecretKey: rawKey, Token: "session-token"})
	for _, tt := range []struct {
		name, token, want string
	}{
		{"Missing", "", "AuthFailure.TokenFailure"},
		{"Wrong", "other-token", "AuthFailure.TokenFailure"},
		{"Right", "session-token", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := v1Form(time.Now())
			if tt.token != "" {
				f.Set("Token", tt.token)
			}
			signV1(http.MethodPost, "127.0.0.1:9000", f, rawKey)
			a, body := serve(t, e, newV1Request(http.MethodPost, f))
			if got := a.code(); got != tt.want {
				t.Errorf("code = %q, want %q", got, tt.want)
			}
			if strings.Contains(body, "session-token") {
				t.Errorf("answer shows the token: %s", body)
			}
		})
	}
}

func TestSignedHosts(t *testing.T) {
	tests := []struct {
		host string
		want []string
	}{
		{"127.0.0.1:9000", []string{"127.0.0.1:9000", "127.0.0.1"}},
		{"localhost:443", []string{"localhost:443", "localhost"}},
		{"[::1]:9000", []string{"[::1]:9000", "[::1]"}},
		{"cvm.tencentcloudapi.com", []string{"cvm.tencentcloudapi.com"}},
		{"", []string{""}},
	}
	for _, tt := range tests {
		if got := signedHosts(tt.host); !slices.Equal(got, tt.want) {
			t.Errorf("signedHosts(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}

// FuzzV1 sends correctly v1-signed requests with arbitrary parameters:
// whatever comes in, the answer is an API 3.0 JSON document and nothing
// panics.
func FuzzV1(f *testing.F) {
	f.Add("RebootInstances", "InstanceIds.0=ins-aaaaaaaa&StopType=HARD", false)
	f.Add("DescribeInstances", "Filters.0.Name=zone&Filters.0.Values.0=ap-guangzhou-3&Limit=5", true)
	f.Add("StopInstances", "InstanceIds.0.1=x&Signature=&Token=%zz", false)
	f.Add("DescribeInstancesStatus", "a.b.c.d.e.f.g.h=1&Nonce=&Nonce=2", true)
	e := mustNew(f, Config{CallsPerSecond: -1}, Instance{ID: "ins-aaaaaaaa"})
	f.Fuzz(func(t *testing.T, action, extra string, get bool) {
		form, err := url.ParseQuery(extra)
		if err != nil {
			form = url.Values{}
		}
		for k, v := range v1Form(time.Now()) {
			if form[k] == nil {
				form[k] = v
			}
		}
		form.Set("Action", action)
		verb := http.MethodPost
		if get {
			verb = http.MethodGet
		}
		signV1(verb, "127.0.0.1:9000", form, rawKey)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, newV1Request(verb, form))
		var a rawAnswer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.Response.RequestID == "" {
			t.Fatalf("answer is not an API 3.0 document (%v): %s", err, w.Body.String())
		}
	})
}
