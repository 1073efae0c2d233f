package approval

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// Selector picks instances by what they are rather than by ID: words of
// different kinds narrow (AND), repeated words of one kind widen (OR). For
// tags the kind is the key, so tag:role=web tag:env=prod narrows and
// tag:role=web tag:role=db widens. Keys, values and names are
// case-sensitive, as in Tencent Cloud. The zero Selector selects nothing.
type Selector struct {
	Tags  map[string][]string // tag key → accepted values
	Names []string            // exact names, or prefixes ending in *
	IPs   []string            // private or public addresses
	Zones []string            // availability zones
}

// Selector limits: a request names at most this many selector words.
const MaxSelectorWords = 50

// Empty reports whether s selects nothing.
func (s Selector) Empty() bool {
	return len(s.Tags) == 0 && len(s.Names) == 0 && len(s.IPs) == 0 && len(s.Zones) == 0
}

// Words returns s as selector words in a stable order: tags by key, then
// names, addresses and zones. They are what the audit log and the card
// show.
func (s Selector) Words() []string {
	var w []string
	for _, k := range slices.Sorted(maps.Keys(s.Tags)) {
		for _, v := range s.Tags[k] {
			w = append(w, "tag:"+k+"="+v)
		}
	}
	for _, n := range s.Names {
		w = append(w, "name:"+n)
	}
	for _, ip := range s.IPs {
		w = append(w, "ip:"+ip)
	}
	for _, z := range s.Zones {
		w = append(w, "zone:"+z)
	}
	return w
}

// Add adds one selector word (tag:KEY=VALUE, name:PATTERN, ip:ADDRESS or
// zone:ZONE) to s. ok is false when word is not a selector word at all;
// err explains a selector word that is malformed, naming it. A repeated
// word is accepted once.
func (s *Selector) Add(word string) (ok bool, err error) {
	kind, value, found := strings.Cut(word, ":")
	if !found {
		return false, nil
	}
	kind = strings.ToLower(kind)
	switch kind {
	case "tag", "name", "ip", "zone":
	default:
		return false, nil
	}
	bad := func(format string, args ...any) (bool, error) {
		return true, &SelectorError{Word: word, Problem: fmt.Sprintf(format, args...)}
	}
	if value == "" {
		return bad("has nothing after `%s:`; selectors look like `tag:role=web`, `name:web-*`, `ip:10.0.1.12` or `zone:ap-guangzhou-3`.", kind)
	}
	if len(value) > 255 || strings.ContainsFunc(value, func(r rune) bool { return r < ' ' || r == 0x7f || r == '<' || r == '>' || r == '`' }) {
		return bad("is not a selector Tencent Cloud could match: it is too long, or holds a control character, an angle bracket or a backquote, which no name, tag or address can.")
	}
	switch kind {
	case "tag":
		key, val, found := strings.Cut(value, "=")
		if !found || key == "" || val == "" {
			return bad("is not a tag selector: write `tag:KEY=VALUE`, for example `tag:role=web`.")
		}
		if s.Tags == nil {
			s.Tags = map[string][]string{}
		}
		if !slices.Contains(s.Tags[key], val) {
			s.Tags[key] = append(s.Tags[key], val)
		}
	case "name":
		prefix := strings.TrimSuffix(value, "*")
		switch {
		case prefix == "":
			return bad("would match every instance; give the start of the name before `*`, for example `name:web-*`.")
		case strings.Contains(prefix, "*"):
			return bad("has a `*` inside the name; only a trailing `*` (a prefix match) is supported.")
		}
		if !slices.Contains(s.Names, value) {
			s.Names = append(s.Names, value)
		}
	case "ip":
		addr, err := netip.ParseAddr(value)
		if err != nil || addr.Zone() != "" {
			return bad("is not an IP address; write one address such as `ip:10.0.1.12` (no ranges).")
		}
		if v := addr.String(); !slices.Contains(s.IPs, v) {
			s.IPs = append(s.IPs, v)
		}
	case "zone":
		if !ValidZone(value) {
			return bad("is not a zone name such as `zone:ap-guangzhou-3`.")
		}
		if !slices.Contains(s.Zones, value) {
			s.Zones = append(s.Zones, value)
		}
	}
	if n := len(s.Words()); n > MaxSelectorWords {
		return true, Errorf(Invalid, "That is more than %d selector words; narrow the selection with fewer, broader words.", MaxSelectorWords)
	}
	return true, nil
}

// SelectorError explains what is wrong with one selector word.
type SelectorError struct {
	Word    string // as typed
	Problem string // a sentence that follows the word
}

func (e *SelectorError) Error() string { return "`" + truncate(e.Word, 60) + "` " + e.Problem }

// ValidZone reports whether z looks like an availability zone: a region
// name followed by a hyphen and a number or word (ap-guangzhou-3).
func ValidZone(z string) bool {
	i := strings.LastIndexByte(z, '-')
	return i > 0 && i < len(z)-1 && ValidRegion(z)
}

// ZoneRegion returns the region a zone belongs to (ap-guangzhou-3 →
// ap-guangzhou).
func ZoneRegion(z string) string {
	if i := strings.LastIndexByte(z, '-'); i > 0 {
		return z[:i]
	}
	return z
}

// Matches reports whether in is selected by s, by the exact rules: every
// kind present must match, any of its values will do. A name pattern
// ending in * is a prefix, any other is the whole name; an address
// matches a private or a public one.
func (s Selector) Matches(in Instance) bool {
	if s.Empty() {
		return false
	}
	for key, values := range s.Tags {
		v, ok := in.Tags[key]
		if !ok || !slices.Contains(values, v) {
			return false
		}
	}
	if len(s.Names) > 0 && !slices.ContainsFunc(s.Names, func(p string) bool { return NameMatches(p, in.Name) }) {
		return false
	}
	if len(s.IPs) > 0 && !slices.ContainsFunc(s.IPs, func(ip string) bool {
		return slices.Contains(in.PrivateIPs, ip) || slices.Contains(in.PublicIPs, ip)
	}) {
		return false
	}
	if len(s.Zones) > 0 && !slices.Contains(s.Zones, in.Zone) {
		return false
	}
	return true
}

// NameMatches reports whether name matches pattern: a prefix when pattern
// ends in *, else the whole name.
func NameMatches(pattern, name string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(name, prefix)
	}
	return name == pattern
}

// Finder looks instances up by what they are. The CVM adapter implements
// it with DescribeInstances filters.
type Finder interface {
	// Find returns every instance of region that sel selects, whatever
	// its state, each once. The result never depends on how loosely the
	// cloud's filters match: the exact rules of Selector.Matches apply.
	Find(ctx context.Context, region string, sel Selector) ([]Instance, error)
}

// Fingerprint returns the short fingerprint of a set of instances: the
// first 8 hex digits of the SHA-256 of the sorted IDs joined by ",". Two
// people looking at the same set see the same fingerprint.
func Fingerprint(ids []string) string {
	sorted := slices.Sorted(slices.Values(ids))
	sum := sha256.Sum256([]byte(strings.Join(sorted, ",")))
	return hex.EncodeToString(sum[:4])
}

// StateCount is how many instances were in one state.
type StateCount struct {
	State string `json:"state"`
	Count int    `json:"count"`
}

// countStates counts instances by state, most common first, then by name.
func countStates(ins []Instance) []StateCount {
	by := map[string]int{}
	for _, in := range ins {
		by[in.State]++
	}
	out := make([]StateCount, 0, len(by))
	for st, n := range by {
		out = append(out, StateCount{State: st, Count: n})
	}
	slices.SortFunc(out, func(a, b StateCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.State, b.State))
	})
	return out
}

// StateCountsText renders counts as "3 STOPPED, 1 STARTING".
func StateCountsText(counts []StateCount) string {
	parts := make([]string, len(counts))
	for i, c := range counts {
		parts[i] = fmt.Sprintf("%d %s", c.Count, cmp.Or(c.State, "unknown"))
	}
	return strings.Join(parts, ", ")
}
