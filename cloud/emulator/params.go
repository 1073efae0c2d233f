package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// params are the action parameters of one request, from a JSON body (POST)
// or a flattened query string (GET, where InstanceIds.0=… and
// Filters.0.Values.1=… name list elements and every value is a string).
type params struct {
	m     map[string]any
	query bool
}

// commonQueryParams are the API's common parameters, which a GET request
// may carry in its query next to the action's own.
var commonQueryParams = map[string]bool{
	"Action": true, "Version": true, "Region": true, "Timestamp": true, "Nonce": true,
	"RequestClient": true, "Language": true, "Token": true, "SecretId": true,
	"Signature": true, "SignatureMethod": true,
}

// parseJSONParams reads a POST body: a JSON object, or nothing.
func parseJSONParams(body []byte) (params, *apiError) {
	p := params{m: map[string]any{}}
	if len(bytes.TrimSpace(body)) == 0 {
		return p, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return p, errorf(codeInvalidParameter, "The request body is not valid JSON: %s.", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return p, errorf(codeInvalidParameter, "The request body is not valid JSON: unexpected data after the object.")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return p, errorf(codeInvalidParameter, "The request body must be a JSON object.")
	}
	p.m = m
	return p, nil
}

// jsonProblem describes a decoding error without quoting the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return "syntax error at byte " + strconv.FormatInt(syn.Offset, 10)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return "malformed input"
}

// parseQueryParams reads the flattened parameters of a GET request.
func parseQueryParams(rawQuery string) (params, *apiError) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return params{m: map[string]any{}, query: true}, errorf(codeInvalidParameter, "The query string is malformed.")
	}
	return formParams(q)
}

// formParams reads flattened parameters, from a query or a form body,
// leaving out the common ones.
func formParams(q url.Values) (params, *apiError) {
	p := params{m: map[string]any{}, query: true}
	root := map[string]any{}
	for key, vals := range q {
		if commonQueryParams[key] {
			continue
		}
		if len(vals) != 1 {
			return p, errorf(codeInvalidParameter, "The parameter `%s` is given more than once.", safeToken(key))
		}
		if err := insertFlat(root, key, vals[0]); err != nil {
			return p, err
		}
	}
	for k, v := range root {
		lv, err := listify(v, k)
		if err != nil {
			return p, err
		}
		root[k] = lv
	}
	p.m = root
	return p, nil
}

// maxParamDepth bounds the dots in a flattened parameter name; the
// deepest the actions use is Filters.N.Values.N.
const maxParamDepth = 6

// insertFlat stores value under a dotted key such as Filters.0.Values.1.
func insertFlat(root map[string]any, key, value string) *apiError {
	segs := strings.Split(key, ".")
	if len(segs) > maxParamDepth {
		return errorf(codeInvalidParameter, "The parameter name `%s` is nested too deeply.", safeToken(key))
	}
	cur := root
	for i, s := range segs {
		if s == "" {
			return errorf(codeInvalidParameter, "The parameter name `%s` is malformed.", safeToken(key))
		}
		if i == len(segs)-1 {
			if _, ok := cur[s]; ok {
				return errorf(codeInvalidParameter, "The parameter `%s` conflicts with another one.", safeToken(key))
			}
			cur[s] = value
			return nil
		}
		switch next := cur[s].(type) {
		case nil:
			m := map[string]any{}
			cur[s] = m
			cur = m
		case map[string]any:
			cur = next
		default:
			return errorf(codeInvalidParameter, "The parameter `%s` conflicts with another one.", safeToken(key))
		}
	}
	return nil
}

// listify turns the maps of insertFlat whose keys are 0…n-1 into lists.
func listify(v any, name string) (any, *apiError) {
	m, ok := v.(map[string]any)
	if !ok {
		return v, nil
	}
	numeric := len(m) > 0
	for k, c := range m {
		numeric = numeric && isIndex(k)
		lc, err := listify(c, name+"."+k)
		if err != nil {
			return nil, err
		}
		m[k] = lc
	}
	if !numeric {
		return m, nil
	}
	list := make([]any, len(m))
	for i := range list {
		c, ok := m[strconv.Itoa(i)]
		if !ok {
			return nil, errorf(codeInvalidParameter, "The list `%s` has a gap at index %d.", safeToken(name), i)
		}
		list[i] = c
	}
	return list, nil
}

func isIndex(s string) bool {
	if s == "" || len(s) > 4 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// only answers UnknownParameter when p has a parameter not in names.
func (p params) only(names ...string) *apiError {
	for k := range p.m {
		known := false
		for _, n := range names {
			known = known || k == n
		}
		if !known {
			return errorf(codeUnknownParameter, "The parameter `%s` is not recognized.", safeToken(k))
		}
	}
	return nil
}

// has reports whether parameter name is present (and not null).
func (p params) has(name string) bool { return p.m[name] != nil }

// str returns string parameter name.
func (p params) str(name string) (string, bool, *apiError) {
	v := p.m[name]
	if v == nil {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, errorf(codeInvalidParameter, "The parameter `%s` must be a string.", name)
	}
	return s, true, nil
}

// integer returns integer parameter name.
func (p params) integer(name string) (int64, bool, *apiError) {
	v := p.m[name]
	if v == nil {
		return 0, false, nil
	}
	var text string
	switch x := v.(type) {
	case json.Number:
		text = x.String()
	case string:
		if !p.query {
			return 0, false, errorf(codeInvalidParameter, "The parameter `%s` must be an integer.", name)
		}
		text = x
	default:
		return 0, false, errorf(codeInvalidParameter, "The parameter `%s` must be an integer.", name)
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, false, errorf(codeInvalidParameter, "The parameter `%s` must be an integer.", name)
	}
	return n, true, nil
}

// boolean returns boolean parameter name.
func (p params) boolean(name string) (bool, bool, *apiError) {
	v := p.m[name]
	if v == nil {
		return false, false, nil
	}
	switch x := v.(type) {
	case bool:
		return x, true, nil
	case string:
		if p.query && (x == "true" || x == "false") {
			return x == "true", true, nil
		}
	}
	return false, false, errorf(codeInvalidParameter, "The parameter `%s` must be a boolean.", name)
}

// strings returns string-list parameter name.
func (p params) strings(name string) ([]string, bool, *apiError) {
	return stringList(p.m[name], name)
}

func stringList(v any, name string) ([]string, bool, *apiError) {
	if v == nil {
		return nil, false, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, false, errorf(codeInvalidParameter, "The parameter `%s` must be a list of strings.", name)
	}
	out := make([]string, len(list))
	for i, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, false, errorf(codeInvalidParameter, "The parameter `%s` must be a list of strings.", name)
		}
		out[i] = s
	}
	return out, true, nil
}

// filter is one element of DescribeInstances' Filters.
type filter struct {
	Name   string
	Values []string
}

// filters returns the Filters parameter.
func (p params) filters() ([]filter, bool, *apiError) {
	v := p.m["Filters"]
	if v == nil {
		return nil, false, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, false, errorf(codeInvalidParameter, "The parameter `Filters` must be a list of filters.")
	}
	out := make([]filter, len(list))
	for i, x := range list {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, false, errorf(codeInvalidParameter, "The parameter `Filters.%d` must be an object with Name and Values.", i)
		}
		for k := range m {
			if k != "Name" && k != "Values" {
				return nil, false, errorf(codeUnknownParameter, "The parameter `Filters.%d.%s` is not recognized.", i, safeToken(k))
			}
		}
		name, ok := m["Name"].(string)
		if !ok || name == "" {
			return nil, false, errorf(codeInvalidFilter, "The filter `Filters.%d` has no Name.", i)
		}
		values, _, err := stringList(m["Values"], "Filters."+strconv.Itoa(i)+".Values")
		if err != nil {
			return nil, false, err
		}
		out[i] = filter{Name: name, Values: values}
	}
	return out, true, nil
}
