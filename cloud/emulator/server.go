package emulator

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
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
	// at is when the call was taken: when it arrived, or when a
	// rate-limited action counted it.
	at time.Time
}

// ServeHTTP answers one API 3.0 request: a POST with a JSON body, or a GET
// with the parameters flattened into the query, signed with
// TC3-HMAC-SHA256; or a GET or form-encoded POST signed with HmacSHA1 or
// HmacSHA256. Like the real API it answers HTTP 200 with a JSON body
// whether the call succeeded or not. Checks run in this order: method and
// body size, signature (timestamp window, SecretId, signature, token),
// version, action, region, injected faults, parameters, and the action's
// own checks.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &callContext{requestID: e.newRequestID(), at: e.now()}
	result, latency, err := e.serve(w, r, c)
	e.mu.Lock()
	e.totalCalls++
	if c.action != "" && (actions[c.action] != nil || len(e.calls) < maxCountedActions) {
		e.calls[c.action]++
	}
	e.mu.Unlock()

	body := encodeResponse(c.requestID, result, err)
	// Latency is added after the action ran, so that a client that gives
	// up cannot know whether it happened.
	sleepCtx(r.Context(), latency)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-TC-RequestId", c.requestID)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)

	if e.cfg.OnCall != nil {
		call := Call{Action: c.action, Region: c.region, RequestID: c.requestID, InstanceIDs: c.ids, At: c.at}
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

	// A TC3 request carries its common parameters in X-TC-* headers and
	// its signature in Authorization; a v1 request carries both among its
	// parameters, so form is set only for v1.
	var form url.Values
	var version string
	if r.Header.Get("Authorization") != "" {
		c.action, c.region = r.Header.Get("X-TC-Action"), r.Header.Get("X-TC-Region")
		version = r.Header.Get("X-TC-Version")
		if err := e.authenticateTC3(r, body); err != nil {
			return nil, 0, err
		}
	} else {
		f, err := formOf(r, body)
		if err != nil {
			return nil, 0, err
		}
		if f.Get("Signature") == "" {
			c.action, c.region = r.Header.Get("X-TC-Action"), r.Header.Get("X-TC-Region")
			return nil, 0, errorf(codeInvalidAuthorization, "The request is not signed: it has neither an Authorization header (%s) nor a Signature parameter (%s, %s).", tc3Algorithm, methodHmacSHA256, methodHmacSHA1)
		}
		form = f
		c.action, c.region, version = form.Get("Action"), form.Get("Region"), form.Get("Version")
		if err := e.authenticateV1(r, form); err != nil {
			return nil, 0, err
		}
	}
	missing := func(name string) *apiError {
		if form != nil {
			return errorf(codeMissingParameter, "The parameter `%s` is missing.", name)
		}
		return errorf(codeMissingParameter, "The parameter `%s` (header X-TC-%s) is missing.", name, name)
	}
	switch {
	case version == "":
		return nil, 0, missing("Version")
	case version != APIVersion:
		return nil, 0, errorf(codeNoSuchVersion, "The API version `%s` does not exist; CVM serves %s.", safeToken(version), APIVersion)
	}
	if c.action == "" {
		return nil, 0, missing("Action")
	}
	run, ok := actions[c.action]
	if !ok {
		return nil, 0, errorf(codeInvalidAction, "The action `%s` does not exist.", safeToken(c.action))
	}
	if c.region == "" {
		return nil, 0, missing("Region")
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
	switch {
	case form != nil:
		p, perr = formParams(form)
	case r.Method == http.MethodPost:
		if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
			return nil, inj.latency, err
		}
		p, perr = parseJSONParams(body)
	default:
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
