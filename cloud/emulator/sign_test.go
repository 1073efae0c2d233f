package emulator

import (
	"strings"
	"testing"
)

// TestOfficialExample checks the signer against the worked example of
// Tencent Cloud's TC3-HMAC-SHA256 documentation.
func TestOfficialExample(t *testing.T) {
	const (
		secretKey = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
		ts        = 1551113065
		payload   = `{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}`
	)
	in := canonicalInput{
		Method: "POST",
		Path:   "/",
		Headers: map[string]string{
			"content-type": "application/json; charset=utf-8",
			"host":         "cvm.tencentcloudapi.com",
		},
		Signed:  []string{"content-type", "host"},
		Payload: []byte(payload),
	}
	cr := canonicalRequest(in)

	if got, want := sha256Hex([]byte(payload)), "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"; got != want {
		t.Errorf("payload hash = %s, want %s", got, want)
	}
	if got, want := sha256Hex([]byte(cr)), "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"; got != want {
		t.Errorf("canonical request hash = %s, want %s\ncanonical request:\n%s", got, want, cr)
	}
	sts := stringToSign(ts, service, cr)
	if got, want := sts, "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"; got != want {
		t.Errorf("string to sign = %q, want %q", got, want)
	}
	if got, want := tc3Signature(secretKey, ts, service, sts), "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"; got != want {
		t.Errorf("signature = %s, want %s", got, want)
	}
}

func TestParseAuthorization(t *testing.T) {
	const sig = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
	tests := []struct {
		name    string
		header  string
		problem string // substring; "" = parses
	}{
		{"SDKShape", "TC3-HMAC-SHA256 Credential=AKIDx/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=" + sig, ""},
		{"NoSpaces", "TC3-HMAC-SHA256 Credential=AKIDx/2019-02-25/cvm/tc3_request,SignedHeaders=content-type;host;x-tc-action,Signature=" + sig, ""},
		{"OtherAlgorithm", "HMAC-SHA1 Credential=AKIDx/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=" + sig, "does not use"},
		{"NoCredential", "TC3-HMAC-SHA256 SignedHeaders=content-type;host, Signature=" + sig, "no Credential"},
		{"ShortCredential", "TC3-HMAC-SHA256 Credential=AKIDx/2019-02-25/cvm, SignedHeaders=content-type;host, Signature=" + sig, "Credential"},
		{"EmptySecretID", "TC3-HMAC-SHA256 Credential=/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=" + sig, "Credential"},
		{"NoSignedHeaders", "TC3-HMAC-SHA256 Credential=AKIDx/2019-02-25/cvm/tc3_request, Signature=" + sig, "no SignedHeaders"},
		{"HostNotSigned", "TC3-HMAC-SHA256 Credential=AKIDx/2019-02-25/cvm/tc3_request, SignedHeaders=content-type, Signature=" + sig, "content-type and host"},
		{"Unsorted", "TC3-HMAC-SHA256 Credential=AKIDx/2019-02-25/cvm/tc3_request, SignedHeaders=host;content-type, Signature=" + sig, "sorted"},
		{"ShortSignature", "TC3-HMAC-SHA256 Credential=AKIDx/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=abc", "Signature"},
		{"NoSignature", "TC3-HMAC-SHA256 Credential=AKIDx/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host", "Signature"},
		{"Garbage", "TC3-HMAC-SHA256 nonsense", "malformed"},
		{"UnknownPart", "TC3-HMAC-SHA256 Credential=AKIDx/2019-02-25/cvm/tc3_request, Foo=bar, SignedHeaders=content-type;host, Signature=" + sig, "unknown part"},
		{"EmptyHeaderName", "TC3-HMAC-SHA256 Credential=AKIDx/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;;host, Signature=" + sig, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, problem := parseAuthorization(tt.header)
			if tt.problem == "" {
				if problem != "" {
					t.Fatalf("problem = %q, want none", problem)
				}
				if got, want := c.SecretID, "AKIDx"; got != want {
					t.Errorf("SecretID = %q, want %q", got, want)
				}
				if got, want := c.Signature, sig; got != want {
					t.Errorf("Signature = %q, want %q", got, want)
				}
				return
			}
			if !strings.Contains(problem, tt.problem) {
				t.Errorf("problem = %q, want it to mention %q", problem, tt.problem)
			}
		})
	}
}
