// Package policyfile reads rebootbot's approval policy from the YAML file
// named by BOT_POLICY, or from the BOT_APPROVERS family of variables when
// there is no file. Every mistake is reported with the file's line.
package policyfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"rebootbot/approval"
)

// Defaults of a policy that does not say otherwise.
const (
	DefaultTTL = 30 * time.Minute
)

// FromEnv returns the policy the environment configures: the file named by
// BOT_POLICY, else BOT_APPROVERS, BOT_MIN_APPROVALS and BOT_REQUEST_TTL.
// warnings lists variables that are ignored. Errors name the variable or
// the file and line.
func FromEnv(getenv func(string) string) (p *approval.Policy, warnings []string, err error) {
	region := strings.TrimSpace(getenv("TENCENTCLOUD_REGION"))
	if region == "" {
		region = approval.DefaultRegion
	}
	if path := strings.TrimSpace(getenv("BOT_POLICY")); path != "" {
		for _, v := range []string{"BOT_APPROVERS", "BOT_MIN_APPROVALS", "BOT_REQUEST_TTL"} {
			if getenv(v) != "" {
				warnings = append(warnings, v+" is ignored because BOT_POLICY is set")
			}
		}
		p, err := Load(path, region)
		return p, warnings, err
	}
	approvers := splitList(getenv("BOT_APPROVERS"))
	if len(approvers) == 0 {
		return nil, nil, errors.New("BOT_POLICY or BOT_APPROVERS must be set: without them nobody could approve a reboot")
	}
	p = &approval.Policy{Approvers: approvers, MinApprovals: 1, RequestTTL: DefaultTTL,
		MaxInstances: approval.DefaultMaxInstances, DefaultRegion: region}
	if v := strings.TrimSpace(getenv("BOT_MIN_APPROVALS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 20 {
			return nil, nil, fmt.Errorf("BOT_MIN_APPROVALS must be a whole number from 1 to 20, not %q", v)
		}
		p.MinApprovals = n
	}
	p.HardMinApprovals = p.MinApprovals
	if v := strings.TrimSpace(getenv("BOT_REQUEST_TTL")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, nil, fmt.Errorf("BOT_REQUEST_TTL must be a positive Go duration such as 30m, not %q", v)
		}
		p.RequestTTL = d
	}
	for _, id := range approvers {
		if !approval.ValidApproverID(id) {
			return nil, nil, fmt.Errorf("BOT_APPROVERS: %q is not a Slack user ID (U…, W…) or user-group ID (S…)", id)
		}
	}
	if err := p.Validate(); err != nil {
		return nil, nil, fmt.Errorf("BOT_APPROVERS: %w", err)
	}
	return p, warnings, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

// Load reads and parses the policy file at path.
func Load(path, defaultRegion string) (*approval.Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("BOT_POLICY: %w", err)
	}
	return Parse(data, path, defaultRegion)
}

// lineError is a mistake at a line of the file.
func lineError(name string, n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", name, n.Line, fmt.Sprintf(format, args...))
}

// Parse reads a policy from YAML. name is used in error messages.
// defaultRegion applies when the file lists no regions.
func Parse(data []byte, name, defaultRegion string) (*approval.Policy, error) {
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%s: the policy file is larger than 1 MiB", name)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: the policy file is empty", name)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, lineError(name, root, "the policy must be a mapping of keys such as approvers and min_approvals")
	}
	p := &approval.Policy{MinApprovals: 1, HardMinApprovals: -1, RequestTTL: DefaultTTL, MaxInstances: approval.DefaultMaxInstances}
	var regionNode *yaml.Node
	err := eachKey(name, root, func(key string, v *yaml.Node) error {
		var err error
		switch key {
		case "approvers":
			p.Approvers, err = ids(name, v, approval.ValidApproverID, "a Slack user ID (U…, W…) or user-group ID (S…)")
		case "requesters":
			p.Requesters, err = ids(name, v, approval.ValidApproverID, "a Slack user ID (U…, W…) or user-group ID (S…)")
		case "channels":
			p.Channels, err = ids(name, v, validChannel, "a Slack channel ID (C…, G…)")
		case "min_approvals":
			p.MinApprovals, err = intIn(name, v, 1, 20)
		case "hard_min_approvals":
			p.HardMinApprovals, err = intIn(name, v, 1, 20)
		case "allow_self_approval":
			p.AllowSelfApproval, err = boolean(name, v)
		case "request_ttl":
			p.RequestTTL, err = duration(name, v)
		case "max_instances":
			p.MaxInstances, err = intIn(name, v, 1, approval.MaxInstancesPerRequest)
		case "regions":
			regionNode = v
			p.Regions, err = ids(name, v, approval.ValidRegion, "a region name such as ap-guangzhou")
		case "rules":
			p.Rules, err = rules(name, v)
		case "waves":
			p.Waves, err = waves(name, v)
		default:
			return lineError(name, v, "unknown key %q (known: approvers, requesters, channels, min_approvals, hard_min_approvals, allow_self_approval, request_ttl, max_instances, regions, rules, waves)", key)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if p.HardMinApprovals < 0 {
		p.HardMinApprovals = p.MinApprovals
	}
	p.DefaultRegion = defaultRegion
	if len(p.Regions) > 0 {
		p.DefaultRegion = p.Regions[0]
	} else if regionNode != nil {
		return nil, lineError(name, regionNode, "regions is empty; leave it out to allow every region")
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// eachKey calls fn for each key of mapping m, refusing duplicates.
func eachKey(name string, m *yaml.Node, fn func(key string, v *yaml.Node) error) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return lineError(name, k, "keys must be plain words")
		}
		if seen[k.Value] {
			return lineError(name, k, "%q appears twice", k.Value)
		}
		seen[k.Value] = true
		if err := fn(k.Value, v); err != nil {
			return err
		}
	}
	return nil
}

func ids(name string, v *yaml.Node, valid func(string) bool, what string) ([]string, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, lineError(name, v, "expected a list such as [%s]", exampleFor(what))
	}
	out := []string{}
	for _, item := range v.Content {
		if item.Kind != yaml.ScalarNode || !valid(item.Value) {
			return nil, lineError(name, item, "%q is not %s", item.Value, what)
		}
		out = append(out, item.Value)
	}
	return out, nil
}

func exampleFor(what string) string {
	if strings.Contains(what, "region") {
		return approval.DefaultRegion
	}
	if strings.Contains(what, "channel") {
		return "C012AB3CD"
	}
	return "U012ABCDEF"
}

func validChannel(s string) bool {
	return len(s) >= 2 && (s[0] == 'C' || s[0] == 'G') && strings.ToUpper(s) == s && !strings.ContainsAny(s, " ,")
}

func intIn(name string, v *yaml.Node, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v.Value)
	if v.Kind != yaml.ScalarNode || err != nil || n < lo || n > hi {
		return 0, lineError(name, v, "expected a whole number from %d to %d, not %q", lo, hi, v.Value)
	}
	return n, nil
}

func boolean(name string, v *yaml.Node) (bool, error) {
	switch v.Value {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, lineError(name, v, "expected true or false, not %q", v.Value)
}

func duration(name string, v *yaml.Node) (time.Duration, error) {
	d, err := time.ParseDuration(v.Value)
	if v.Kind != yaml.ScalarNode || err != nil || d < time.Minute || d > 7*24*time.Hour {
		return 0, lineError(name, v, "expected a duration from 1m to 168h such as 30m, not %q", v.Value)
	}
	return d, nil
}

func rules(name string, v *yaml.Node) ([]approval.Rule, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, lineError(name, v, "rules must be a list")
	}
	var out []approval.Rule
	for _, item := range v.Content {
		if item.Kind != yaml.MappingNode {
			return nil, lineError(name, item, "each rule must be a mapping with tags and min_approvals, approvers or deny")
		}
		var r approval.Rule
		err := eachKey(name, item, func(key string, v *yaml.Node) error {
			var err error
			switch key {
			case "tags":
				r.Tags, err = tags(name, v)
			case "min_approvals":
				r.MinApprovals, err = intIn(name, v, 1, 20)
			case "approvers":
				r.Approvers, err = ids(name, v, approval.ValidApproverID, "a Slack user ID (U…, W…) or user-group ID (S…)")
			case "deny":
				r.Deny, err = boolean(name, v)
			default:
				return lineError(name, v, "unknown rule key %q (known: tags, min_approvals, approvers, deny)", key)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(r.Tags) == 0 {
			return nil, lineError(name, item, "a rule needs tags to match, such as tags: {env: prod}")
		}
		out = append(out, r)
	}
	return out, nil
}

func tags(name string, v *yaml.Node) (map[string]string, error) {
	if v.Kind != yaml.MappingNode {
		return nil, lineError(name, v, "tags must be a mapping such as {env: prod}")
	}
	out := map[string]string{}
	err := eachKey(name, v, func(key string, val *yaml.Node) error {
		if val.Kind != yaml.ScalarNode || key == "" {
			return lineError(name, val, "tag %q must have a plain value", key)
		}
		out[key] = val.Value
		return nil
	})
	return out, err
}

// waves reads the wave rules: {required_above: N, max_size: N, min_pause: DURATION}.
func waves(name string, v *yaml.Node) (approval.WaveRules, error) {
	var w approval.WaveRules
	if v.Kind != yaml.MappingNode {
		return w, lineError(name, v, "waves must be a mapping such as {required_above: 50, max_size: 100, min_pause: 2m}")
	}
	err := eachKey(name, v, func(key string, val *yaml.Node) error {
		var err error
		switch key {
		case "required_above":
			w.RequiredAbove, err = intIn(name, val, 1, approval.MaxInstancesPerRequest)
		case "max_size":
			w.MaxSize, err = intIn(name, val, 1, approval.MaxInstancesPerRequest)
		case "min_pause":
			d, perr := time.ParseDuration(val.Value)
			if val.Kind != yaml.ScalarNode || perr != nil || d < 0 || d > approval.MaxWavePause {
				return lineError(name, val, "expected a duration from 0s to %s such as 2m, not %q", approval.MaxWavePause, val.Value)
			}
			w.MinPause = d
		default:
			return lineError(name, val, "unknown waves key %q (known: required_above, max_size, min_pause)", key)
		}
		return err
	})
	return w, err
}
