package emulator

import (
	"crypto/hmac"
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// authenticateTC3 checks the TC3-HMAC-SHA256 signature of r, whose
// Authorization header is set.
func (e *Emulator) authenticateTC3(r *http.Request, body []byte) *apiError {
	cred, problem := parseAuthorization(r.Header.Get("Authorization"))
	if problem != "" {
		return errorf(codeSignatureFailure, "The request signature could not be verified: %s.", problem)
	}
	ts, err := e.checkTimestamp(r.Header.Get("X-TC-Timestamp"), "`Timestamp` (header X-TC-Timestamp)")
	if err != nil {
		return err
	}
	if err := e.checkSecretID(cred.SecretID); err != nil {
		return err
	}
	if cred.Service != service && cred.Service != nodeService(r.Host) {
		return errorf(codeSignatureFailure, "The request signature could not be verified: the credential scope is for service `%s`, not %s.", safeToken(cred.Service), service)
	}
	if cred.Date != scopeDate(ts) {
		return errorf(codeSignatureFailure, "The request signature could not be verified: the credential scope date does not match X-TC-Timestamp.")
	}
	headers := make(map[string]string, len(cred.Signed))
	for _, name := range cred.Signed {
		headers[name] = r.Header.Get(name)
	}
	in := canonicalInput{
		Method:   r.Method,
		Path:     r.URL.EscapedPath(),
		Query:    r.URL.RawQuery,
		Headers:  headers,
		Signed:   cred.Signed,
		Payload:  body,
		Unsigned: r.Header.Get("X-TC-Content-SHA256") == unsignedPayload,
	}
	got := []byte(strings.ToLower(cred.Signature))
	matched := false
	for _, host := range signedHosts(r.Host) {
		in.Headers["host"] = host
		want := tc3Signature(e.cfg.SecretKey, ts, cred.Service, stringToSign(ts, cred.Service, canonicalRequest(in)))
		matched = hmac.Equal([]byte(want), got) || matched
	}
	if !matched {
		return errorf(codeSignatureFailure, "The request signature does not match; check the SecretKey and how the request was signed.")
	}
	return e.checkToken(r.Header.Get("X-TC-Token"), "header X-TC-Token")
}

// nodeService returns the service name the official Node.js SDK signs for
// when it sends to host: everything before the host's first dot, which is
// "cvm" for CVM's endpoints but "127" for 127.0.0.1:9000 and
// "localhost:9000" for localhost:9000. The signature still has to match
// with that scope, so accepting it lets that SDK in and nothing else.
func nodeService(host string) string {
	name, _, _ := strings.Cut(host, ".")
	return name
}

// formOf returns the parameters of a request signed with a v1 method:
// the query of a GET, the form body of a POST. It returns nil for a POST
// that is not form-encoded.
func formOf(r *http.Request, body []byte) (url.Values, *apiError) {
	raw, where := r.URL.RawQuery, "query string"
	if r.Method == http.MethodPost {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, nil
		}
		raw, where = string(body), "form body"
	}
	form, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errorf(codeInvalidParameter, "The %s is malformed.", where)
	}
	return form, nil
}

// authenticateV1 checks the HmacSHA1 or HmacSHA256 signature of r, whose
// parameters, the signature among them, are form.
func (e *Emulator) authenticateV1(r *http.Request, form url.Values) *apiError {
	for name := range commonQueryParams {
		if len(form[name]) > 1 {
			return errorf(codeInvalidParameter, "The parameter `%s` is given more than once.", name)
		}
	}
	method := form.Get("SignatureMethod")
	switch method {
	case "":
		method = methodHmacSHA1
	case methodHmacSHA1, methodHmacSHA256:
	default:
		return errorf(codeSignatureFailure, "The request signature could not be verified: SignatureMethod `%s` is neither %s nor %s (%s goes in the Authorization header).", safeToken(method), methodHmacSHA1, methodHmacSHA256, tc3Algorithm)
	}
	if _, err := e.checkTimestamp(form.Get("Timestamp"), "`Timestamp`"); err != nil {
		return err
	}
	switch nonce := form.Get("Nonce"); {
	case nonce == "":
		return errorf(codeMissingParameter, "The parameter `Nonce` is missing.")
	case strings.Trim(nonce, "0123456789") != "":
		return errorf(codeInvalidParameterValue, "The parameter `Nonce` must be a non-negative integer.")
	}
	id := form.Get("SecretId")
	if id == "" {
		return errorf(codeMissingParameter, "The parameter `SecretId` is missing.")
	}
	if err := e.checkSecretID(id); err != nil {
		return err
	}
	got := []byte(form.Get("Signature"))
	matched := false
	for _, host := range signedHosts(r.Host) {
		want := v1Signature(e.cfg.SecretKey, method, v1StringToSign(r.Method, host, r.URL.Path, form))
		matched = hmac.Equal([]byte(want), got) || matched
	}
	if !matched {
		return errorf(codeSignatureFailure, "The request signature does not match; check the SecretKey, SignatureMethod and how the request was signed.")
	}
	return e.checkToken(form.Get("Token"), "parameter Token")
}

// checkTimestamp parses a request's Timestamp, named in messages as name,
// and checks that it is within the signature window.
func (e *Emulator) checkTimestamp(text, name string) (int64, *apiError) {
	if text == "" {
		return 0, errorf(codeMissingParameter, "The parameter %s is missing.", name)
	}
	ts, err := strconv.ParseInt(text, 10, 64)
	if err != nil || ts <= 0 {
		return 0, errorf(codeInvalidParameterValue, "The parameter %s must be a Unix time in seconds.", name)
	}
	if e.window > 0 {
		skew := e.now().Sub(time.Unix(ts, 0))
		if skew > e.window || skew < -e.window {
			return 0, errorf(codeSignatureExpire, "The signature expired: the request timestamp is %s away from the server's time; at most %s is allowed.", skew.Abs().Round(time.Second), e.window)
		}
	}
	return ts, nil
}

// checkSecretID answers SecretIdNotFound unless id is the configured
// SecretId; without a configured key pair nothing is accepted.
func (e *Emulator) checkSecretID(id string) *apiError {
	if e.cfg.SecretID == "" || e.cfg.SecretKey == "" ||
		subtle.ConstantTimeCompare([]byte(id), []byte(e.cfg.SecretID)) != 1 {
		return errorf(codeSecretIDNotFound, "The SecretId is not found; check that the key exists and is entered correctly.")
	}
	return nil
}

// checkToken answers TokenFailure when a session token is configured and
// token, sent in where, is not it. The answer never shows either token.
func (e *Emulator) checkToken(token, where string) *apiError {
	if e.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(e.cfg.Token)) != 1 {
		return errorf(codeTokenFailure, "The session token (%s) is missing or not valid.", where)
	}
	return nil
}

// signedHosts returns the forms of the Host header a client may have
// signed: as sent, and without its port. The official Node.js SDK signs the
// host name alone while it sends the port, so a signature made either way
// is accepted, and no other.
func signedHosts(host string) []string {
	name, _, err := net.SplitHostPort(host)
	if err != nil || name == "" {
		return []string{host}
	}
	if strings.Contains(name, ":") {
		name = "[" + name + "]" // an IPv6 address keeps its brackets, as URL.hostname does
	}
	return []string{host, name}
}
