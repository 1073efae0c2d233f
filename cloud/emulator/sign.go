package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"time"
)

// tc3Algorithm is the only signature algorithm of API 3.0 the emulator
// accepts.
const tc3Algorithm = "TC3-HMAC-SHA256"

// service is the service name in the credential scope of a TC3 signature.
const service = "cvm"

// unsignedPayload is the X-TC-Content-SHA256 value with which a client asks
// for the payload to be left out of the signature.
const unsignedPayload = "UNSIGNED-PAYLOAD"

// canonicalInput is everything a TC3 signature covers.
type canonicalInput struct {
	Method  string
	Path    string // as sent, "/" for API 3.0
	Query   string // raw query string; empty for POST
	Headers map[string]string
	// Signed lists the signed header names, lowercase and sorted.
	Signed  []string
	Payload []byte
	// Unsigned reports whether the client asked for UNSIGNED-PAYLOAD.
	Unsigned bool
}

// canonicalRequest returns TC3's canonical request: method, URI, query,
// canonical headers (lowercase names and values, trimmed, sorted), signed
// header names and the hex SHA-256 of the payload, one per line.
func canonicalRequest(in canonicalInput) string {
	var b strings.Builder
	b.WriteString(in.Method)
	b.WriteByte('\n')
	path := in.Path
	if path == "" {
		path = "/"
	}
	b.WriteString(path)
	b.WriteByte('\n')
	b.WriteString(in.Query)
	b.WriteByte('\n')
	for _, name := range in.Signed {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(strings.ToLower(strings.TrimSpace(in.Headers[name])))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(in.Signed, ";"))
	b.WriteByte('\n')
	if in.Unsigned {
		b.WriteString(sha256Hex([]byte(unsignedPayload)))
	} else {
		b.WriteString(sha256Hex(in.Payload))
	}
	return b.String()
}

// scopeDate returns the UTC date of a Unix timestamp as the credential
// scope names it.
func scopeDate(ts int64) string {
	return time.Unix(ts, 0).UTC().Format("2006-01-02")
}

// stringToSign returns TC3's string to sign for a canonical request, with
// the credential scope of svc on the date of ts.
func stringToSign(ts int64, svc, canonical string) string {
	return tc3Algorithm + "\n" +
		strconv.FormatInt(ts, 10) + "\n" +
		scopeDate(ts) + "/" + svc + "/tc3_request\n" +
		sha256Hex([]byte(canonical))
}

// tc3Signature returns the hex signature of a string to sign with the key
// derived from secretKey for service svc on the date of ts.
func tc3Signature(secretKey string, ts int64, svc, toSign string) string {
	kDate := hmacSHA256([]byte("TC3"+secretKey), scopeDate(ts))
	kService := hmacSHA256(kDate, svc)
	kSigning := hmacSHA256(kService, "tc3_request")
	return hex.EncodeToString(hmacSHA256(kSigning, toSign))
}

// credential is a parsed Authorization header.
type credential struct {
	SecretID  string
	Date      string
	Service   string
	Signed    []string
	Signature string
}

// parseAuthorization splits a TC3 Authorization header into its parts. The
// reason it returns on failure is safe to show: it never echoes the header.
func parseAuthorization(h string) (credential, string) {
	var c credential
	rest, ok := strings.CutPrefix(h, tc3Algorithm+" ")
	if !ok {
		return c, "the Authorization header does not use " + tc3Algorithm
	}
	var haveCred, haveSigned, haveSig bool
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return c, "the Authorization header is malformed"
		}
		switch k {
		case "Credential":
			fields := strings.Split(v, "/")
			if len(fields) != 4 || fields[0] == "" || fields[3] != "tc3_request" {
				return c, "the Credential of the Authorization header is malformed"
			}
			c.SecretID, c.Date, c.Service = fields[0], fields[1], fields[2]
			haveCred = true
		case "SignedHeaders":
			for name := range strings.SplitSeq(v, ";") {
				if name == "" {
					return c, "SignedHeaders of the Authorization header is malformed"
				}
				c.Signed = append(c.Signed, strings.ToLower(name))
			}
			haveSigned = true
		case "Signature":
			c.Signature = v
			haveSig = true
		default:
			return c, "the Authorization header has an unknown part"
		}
	}
	switch {
	case !haveCred:
		return c, "the Authorization header has no Credential"
	case !haveSigned:
		return c, "the Authorization header has no SignedHeaders"
	case !haveSig || len(c.Signature) != 64:
		return c, "the Authorization header has no valid Signature"
	}
	if !sort.StringsAreSorted(c.Signed) {
		return c, "SignedHeaders must be sorted"
	}
	var hasCT, hasHost bool
	for _, n := range c.Signed {
		hasCT = hasCT || n == "content-type"
		hasHost = hasHost || n == "host"
	}
	if !hasCT || !hasHost {
		return c, "SignedHeaders must include content-type and host"
	}
	return c, ""
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
