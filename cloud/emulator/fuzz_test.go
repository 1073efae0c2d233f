package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzServeHTTP sends correctly signed requests with arbitrary actions,
// bodies and queries: whatever comes in, the answer is an API 3.0 JSON
// document and nothing panics.
func FuzzServeHTTP(f *testing.F) {
	f.Add("RebootInstances", `{"InstanceIds":["ins-aaaaaaaa"],"StopType":"HARD"}`, "", false)
	f.Add("DescribeInstances", `{"Filters":[{"Name":"tag:env","Values":["prod"]}],"Limit":5}`, "", false)
	f.Add("DescribeInstances", ``, "Filters.0.Name=zone&Filters.0.Values.0=ap-guangzhou-3", true)
	f.Add("DescribeInstancesStatus", `{"InstanceIds":[null]}`, "", false)
	f.Add("StopInstances", `{"InstanceIds":["ins-aaaaaaaa"],"ForceStop":"yes"}`, "", false)
	f.Add("StartInstances", `{"InstanceIds":{"0":"ins-aaaaaaaa"}}`, "InstanceIds.0.1=x", true)
	f.Add("RebootInstances", `[[[[[[[[]]]]]]]]`, "a.b.c.d.e.f.g.h=1", true)
	e := mustNew(f, Config{CallsPerSecond: -1, DescribeCallsPerSecond: -1}, Generate(20, 1)...)
	e.Add(Instance{ID: "ins-aaaaaaaa"})
	now := time.Now()
	f.Fuzz(func(t *testing.T, action, body, query string, get bool) {
		var r *http.Request
		if get {
			r = httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9000/", nil)
			r.URL.RawQuery = query
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			body = ""
		} else {
			r = httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9000/", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
		}
		r.Header.Set("X-TC-Action", action)
		r.Header.Set("X-TC-Version", APIVersion)
		r.Header.Set("X-TC-Region", DefaultRegion)
		signHTTP(r, []byte(body), rawID, rawKey, now)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		var a rawAnswer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.Response.RequestID == "" {
			t.Fatalf("answer is not an API 3.0 document (%v): %s", err, w.Body.String())
		}
	})
}

// FuzzAuthorization sends arbitrary Authorization headers and timestamps.
func FuzzAuthorization(f *testing.F) {
	f.Add("TC3-HMAC-SHA256 Credential=AKIDrawtest/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=00", "1551113065")
	f.Add("TC3-HMAC-SHA256 Credential=a/b/c/tc3_request, SignedHeaders=content-type;host;x-tc-action, Signature="+strings.Repeat("a", 64), "-1")
	f.Add("TC3-HMAC-SHA256 ,,,==", "99999999999999999999")
	e := mustNew(f, Config{CallsPerSecond: -1, DescribeCallsPerSecond: -1})
	f.Fuzz(func(t *testing.T, auth, ts string) {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9000/", strings.NewReader(`{}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-TC-Action", "DescribeInstances")
		r.Header.Set("X-TC-Version", APIVersion)
		r.Header.Set("X-TC-Region", DefaultRegion)
		r.Header.Set("X-TC-Timestamp", ts)
		r.Header.Set("Authorization", auth)
		a, _ := serve(t, e, r)
		if a.code() == "" {
			t.Fatalf("a forged Authorization %q was accepted", auth)
		}
	})
}
