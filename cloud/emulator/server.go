package emulator

import (
	"crypto/hmac"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxBodyBytes is the largest request body the emulator reads; a larger
// one is answered RequestSizeLimitExceeded.
const MaxBodyBytes = 1 << 20

// maxCountedActions bounds how many distinct action names Calls keeps
// counts for, so that clients sending made-up names cannot grow it forever.
const maxCountedActions = 256

// action serves one API action. It returns the fields of the Response
// object besides RequestId, or an error.
type action func(e *Emulator, c *callContext) (any, *apiError)

// actions are the API actions the emulator serves.
var actions = map[string]action{
	"DescribeInstances":       (*Emulator).describeInstances,
	"DescribeInstancesStatus": (*Emulator).describeInstancesStatus,
	"RebootInstances":         (*Emulator).rebootInstances,
	"StartInstances":          (*Emulator).startInstances,
	"StopInstances":           (*Emulator).stopInstances,
}

// callContext is one authenticated request on its way through an action.
type callContext struct {
	action    string
	region    string
	requestID string
	params    params
	// ids are the request's InstanceIds once the action has read them, for
	// Call and logs.
	ids []string
}

// ServeHTTP answers one API 3.0 request: a POST with a JSON body, or a GET
// with the parameters flattened into the query, signed with
// TC3-HMAC-SHA256. Like the real API it answers HTTP 200 with a JSON body
// whether the call succeeded or not. Checks run in this order: method and
// body size, signature (Authorization, timestamp window, SecretId,
// signature, token), version, action, region, injected faults, parameters,
// and the action's own checks.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &callContext{
		action:    r.Header.Get("X-TC-Action"),
		region:    r.Header.Get("X-TC-Region"),
		requestID: e.newRequestID(),
	}
	e.mu.Lock()
	e.totalCalls++
	if c.action != "" && (actions[c.action] != nil || len(e.calls) < maxCountedActions) {
		e.calls[c.action]++
	}
	e.mu.Unlock()

	result, latency, err := e.serve(w, r, c)
	body := encodeResponse(c.requestID, result, err)
	// Latency is added after the action ran, so that a client that gives
	// up cannot know whether it happened.
	sleepCtx(r.Context(), latency)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-TC-RequestId", c.requestID)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)

	if e.cfg.OnCall != nil {
		call := Call{Action: c.action, Region: c.region, RequestID: c.requestID, InstanceIDs: c.ids}
		if err != nil {
			call.ErrorCode = err.Code
		}
		e.cfg.OnCall(call)
	}
}

// serve checks the request and runs its action.
func (e *Emulator) serve(w http.ResponseWriter, r *http.Request, c *callContext) (any, time.Duration, *apiError) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, 0, errorf(codeUnsupportedProtocol, "Only GET and POST requests are supported, not %s.", safeToken(r.Method))
	}
	var body []byte
	if r.Method == http.MethodPost {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, 0, errorf(codeRequestSizeLimit, "The request body is larger than %d bytes.", MaxBodyBytes)
			}
			return nil, 0, errorf(codeInvalidParameter, "The request body could not be read.")
		}
		body = b
	}
	if err := e.authenticate(r, body); err != nil {
		return nil, 0, err
	}
	switch v := r.Header.Get("X-TC-Version"); {
	case v == "":
		return nil, 0, errorf(codeMissingParameter, "The parameter `Version` (header X-TC-Version) is missing.")
	case v != APIVersion:
		return nil, 0, errorf(codeNoSuchVersion, "The API version `%s` does not exist; CVM serves %s.", safeToken(v), APIVersion)
	}
	if c.action == "" {
		return nil, 0, errorf(codeMissingParameter, "The parameter `Action` (header X-TC-Action) is missing.")
	}
	run, ok := actions[c.action]
	if !ok {
		return nil, 0, errorf(codeInvalidAction, "The action `%s` does not exist.", safeToken(c.action))
	}
	if c.region == "" {
		return nil, 0, errorf(codeMissingParameter, "The parameter `Region` (header X-TC-Region) is missing.")
	}
	if !e.knownRegion(c.region) {
		return nil, 0, errorf(codeUnsupportedRegion, "The region `%s` is not supported.", safeToken(c.region))
	}

	e.mu.Lock()
	inj := e.rollFaults(c.action)
	e.mu.Unlock()
	if inj.err != nil {
		return nil, inj.latency, inj.err
	}

	var p params
	var perr *apiError
	if r.Method == http.MethodPost {
		if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
			return nil, inj.latency, err
		}
		p, perr = parseJSONParams(body)
	} else {
		p, perr = parseQueryParams(r.URL.RawQuery)
	}
	if perr != nil {
		return nil, inj.latency, perr
	}
	c.params = p
	if ids, ok, err := p.strings("InstanceIds"); ok && err == nil {
		c.ids = ids
	}
	result, err := run(e, c)
	return result, inj.latency, err
}

// authenticate checks the TC3-HMAC-SHA256 signature of r.
func (e *Emulator) authenticate(r *http.Request, body []byte) *apiError {
	h := r.Header.Get("Authorization")
	if h == "" {
		return errorf(codeInvalidAuthorization, "The request has no Authorization header.")
	}
	cred, problem := parseAuthorization(h)
	if problem != "" {
		return errorf(codeSignatureFailure, "The request signature could not be verified: %s.", problem)
	}
	tsText := r.Header.Get("X-TC-Timestamp")
	if tsText == "" {
		return errorf(codeMissingParameter, "The parameter `Timestamp` (header X-TC-Timestamp) is missing.")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || ts <= 0 {
		return errorf(codeInvalidParameterValue, "The parameter `Timestamp` must be a Unix time in seconds.")
	}
	if e.window > 0 {
		skew := e.now().Sub(time.Unix(ts, 0))
		if skew > e.window || skew < -e.window {
			return errorf(codeSignatureExpire, "The signature expired: the request timestamp is %s away from the server's time; at most %s is allowed.", skew.Abs().Round(time.Second), e.window)
		}
	}
	if e.cfg.SecretID == "" || e.cfg.SecretKey == "" ||
		subtle.ConstantTimeCompare([]byte(cred.SecretID), []byte(e.cfg.SecretID)) != 1 {
		return errorf(codeSecretIDNotFound, "The SecretId is not found; check that the key exists and is entered correctly.")
	}
	if cred.Service != service {
		return errorf(codeSignatureFailure, "The request signature could not be verified: the credential scope is for service `%s`, not %s.", safeToken(cred.Service), service)
	}
	if cred.Date != scopeDate(ts) {
		return errorf(codeSignatureFailure, "The request signature could not be verified: the credential scope date does not match X-TC-Timestamp.")
	}
	headers := make(map[string]string, len(cred.Signed))
	for _, name := range cred.Signed {
		if name == "host" {
			headers[name] = r.Host
		} else {
			headers[name] = r.Header.Get(name)
		}
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
	want := tc3Signature(e.cfg.SecretKey, ts, stringToSign(ts, canonicalRequest(in)))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(cred.Signature))) {
		return errorf(codeSignatureFailure, "The request signature does not match; check the SecretKey and how the request was signed.")
	}
	if e.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("X-TC-Token")), []byte(e.cfg.Token)) != 1 {
		return errorf(codeTokenFailure, "The token in X-TC-Token is missing or not valid.")
	}
	return nil
}

// checkJSONContentType accepts application/json with any parameters.
func checkJSONContentType(ct string) *apiError {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorf(codeInvalidParameter, "POST requests must have Content-Type application/json.")
	}
	return nil
}

// safeToken returns s for a message when it is a short plain token, and a
// placeholder otherwise, so that whatever a client sends is never echoed
// at length or with control characters.
func safeToken(s string) string {
	if len(s) > 64 {
		return "(too long)"
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e || c == '`' {
			return "(not printable)"
		}
	}
	return s
}

// errorBody and okBody are the two shapes of an API 3.0 answer.
type errorBody struct {
	Response struct {
		Error struct {
			Code    string `json:"Code"`
			Message string `json:"Message"`
		} `json:"Error"`
		RequestID string `json:"RequestId"`
	} `json:"Response"`
}

// encodeResponse returns the JSON answer: {"Response":{…,"RequestId":…}}
// with result's fields, or {"Response":{"Error":{…},"RequestId":…}}.
func encodeResponse(requestID string, result any, apiErr *apiError) []byte {
	if apiErr == nil {
		b, err := json.Marshal(result)
		if err == nil && len(b) >= 2 && b[0] == '{' {
			out := make([]byte, 0, len(b)+len(requestID)+40)
			out = append(out, `{"Response":`...)
			out = append(out, b[:len(b)-1]...)
			if len(b) > 2 {
				out = append(out, ',')
			}
			out = append(out, `"RequestId":"`...)
			out = append(out, requestID...)
			out = append(out, `"}}`...)
			return out
		}
		apiErr = errorf(codeInternalError, "The response could not be encoded.")
	}
	var eb errorBody
	eb.Response.Error.Code = apiErr.Code
	eb.Response.Error.Message = apiErr.Message
	eb.Response.RequestID = requestID
	b, _ := json.Marshal(eb)
	return b
}
