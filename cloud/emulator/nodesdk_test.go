package emulator

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNodeSDKSignatures signs TC3 requests the way the official Node.js SDK
// does, which the Go SDK cannot reproduce: the host name without the port
// in the canonical headers, and the credential scope's service taken from
// the endpoint up to its first dot ("127" for 127.0.0.1:9000). Only what
// that SDK does is let in.
func TestNodeSDKSignatures(t *testing.T) {
	e := mustNew(t, Config{}, Instance{ID: "ins-aaaaaaaa"})
	tests := []struct {
		name       string
		sentTo     string // the Host header
		signedHost string // host in the canonical headers
		svc        string // service in the credential scope
		want       string
	}{
		{"IPEndpoint", "127.0.0.1:9000", "127.0.0.1", "127", ""},
		{"NameEndpoint", "localhost:9000", "localhost", "localhost:9000", ""},
		{"CVMEndpoint", "cvm.tencentcloudapi.com:8443", "cvm.tencentcloudapi.com", "cvm", ""},
		{"ScopeCVM", "127.0.0.1:9000", "127.0.0.1", "cvm", ""},
		{"OtherService", "127.0.0.1:9000", "127.0.0.1", "cbs", "AuthFailure.SignatureFailure"},
		{"ServiceOfAnotherHost", "127.0.0.1:9000", "127.0.0.1", "localhost:9000", "AuthFailure.SignatureFailure"},
		{"AnotherHost", "127.0.0.1:9000", "localhost", "127", "AuthFailure.SignatureFailure"},
		{"PortOnly", "127.0.0.1:9000", ":9000", "127", "AuthFailure.SignatureFailure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const body = `{"Limit":5}`
			r := httptest.NewRequest(http.MethodPost, "http://"+tt.sentTo+"/", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-TC-Action", "DescribeInstances")
			r.Header.Set("X-TC-Version", APIVersion)
			r.Header.Set("X-TC-Region", "ap-guangzhou")
			ts := time.Now().Unix()
			r.Header.Set("X-TC-Timestamp", strconv.FormatInt(ts, 10))
			in := canonicalInput{
				Method:  http.MethodPost,
				Path:    "/",
				Headers: map[string]string{"content-type": "application/json", "host": tt.signedHost},
				Signed:  []string{"content-type", "host"},
				Payload: []byte(body),
			}
			sig := tc3Signature(rawKey, ts, tt.svc, stringToSign(ts, tt.svc, canonicalRequest(in)))
			r.Header.Set("Authorization", tc3Algorithm+" Credential="+rawID+"/"+scopeDate(ts)+"/"+tt.svc+"/tc3_request, SignedHeaders=content-type;host, Signature="+sig)

			a, answer := serve(t, e, r)
			if got := a.code(); got != tt.want {
				t.Errorf("code = %q, want %q\n%s", got, tt.want, answer)
			}
		})
	}
}
