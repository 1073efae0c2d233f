package emulator

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// The signature methods of API 3.0's older scheme (v1), which every official
// SDK still offers and tccli uses: the parameters, the common ones
// included, travel in the query (GET) or a form body (POST) and are signed
// together; the signature is the Signature parameter. A request without
// SignatureMethod is signed with HmacSHA1.
const (
	methodHmacSHA1   = "HmacSHA1"
	methodHmacSHA256 = "HmacSHA256"
)

// v1StringToSign returns what a v1 signature covers: the method, host and
// path, "?", then every parameter but Signature as name=value, sorted by
// name and joined by "&". Values are as the client meant them, not
// URL-encoded.
func v1StringToSign(method, host, path string, form url.Values) string {
	var b strings.Builder
	b.WriteString(method)
	b.WriteString(host)
	b.WriteString(path)
	b.WriteByte('?')
	first := true
	for _, name := range slices.Sorted(maps.Keys(form)) {
		if name == "Signature" {
			continue
		}
		for _, v := range form[name] {
			if !first {
				b.WriteByte('&')
			}
			first = false
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	return b.String()
}

// v1Signature returns the base64 HMAC of toSign keyed with secretKey:
// HMAC-SHA256 for HmacSHA256, HMAC-SHA1 for HmacSHA1.
func v1Signature(secretKey, signatureMethod, toSign string) string {
	var h func() hash.Hash = sha1.New
	if signatureMethod == methodHmacSHA256 {
		h = sha256.New
	}
	m := hmac.New(h, []byte(secretKey))
	m.Write([]byte(toSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
