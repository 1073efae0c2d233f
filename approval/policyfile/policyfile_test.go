package policyfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
)

const specExample = `approvers: [U012ABCDEF, S0SREGROUP]   # Slack user IDs and user-group IDs
requesters: []                        # empty: anyone
channels: []                          # where /reboot may be used; empty: anywhere
min_approvals: 1
hard_min_approvals: 2                 # for --hard and --soft-first
allow_self_approval: false
request_ttl: 30m
max_instances: 100
regions: [ap-guangzhou, ap-shanghai]  # allowed regions; the first is the default
rules:                                # first match by instance tag wins
  - tags: {env: prod}
    min_approvals: 2
    approvers: [S0SREGROUP]
  - tags: {reboot: deny}
    deny: true
`

func TestParseSpecExample(t *testing.T) {
	p, err := Parse([]byte(specExample), "policy.yml", "ap-beijing")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(p.Approvers, ","), "U012ABCDEF,S0SREGROUP"; got != want {
		t.Errorf("approvers = %s, want %s", got, want)
	}
	if p.MinApprovals != 1 || p.HardMinApprovals != 2 || p.RequestTTL != 30*time.Minute || p.MaxInstances != 100 {
		t.Errorf("numbers = %d %d %v %d", p.MinApprovals, p.HardMinApprovals, p.RequestTTL, p.MaxInstances)
	}
	if p.DefaultRegion != "ap-guangzhou" {
		t.Errorf("default region = %s, want the first listed", p.DefaultRegion)
	}
	if len(p.Rules) != 2 || p.Rules[0].Tags["env"] != "prod" || p.Rules[0].MinApprovals != 2 || !p.Rules[1].Deny {
		t.Errorf("rules = %+v", p.Rules)
	}
	prod := approval.Instance{ID: "ins-aaaaaaaa", Tags: map[string]string{"env": "prod"}}
	req, err := p.Require([]approval.Instance{prod}, approval.Soft)
	if err != nil || req.Required != 2 || len(req.ApproverGroups) != 1 || req.ApproverGroups[0][0] != "S0SREGROUP" {
		t.Errorf("Require(prod) = %+v, %v", req, err)
	}
	denied := approval.Instance{ID: "ins-bbbbbbbb", Tags: map[string]string{"reboot": "deny"}}
	if _, err := p.Require([]approval.Instance{prod, denied}, approval.Soft); approval.ErrorKind(err) != approval.Forbidden || !strings.Contains(err.Error(), "ins-bbbbbbbb") {
		t.Errorf("Require(deny) err = %v", err)
	}
}

func TestParseFleetLimits(t *testing.T) {
	p, err := Parse([]byte("approvers: [U1]\nmax_instances: 5000\nwaves: {required_above: 50, max_size: 100, min_pause: 2m}\n"), "policy.yml", approval.DefaultRegion)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Waves, (approval.WaveRules{RequiredAbove: 50, MaxSize: 100, MinPause: 2 * time.Minute}); got != want || p.MaxInstances != 5000 {
		t.Errorf("waves = %+v, max_instances = %d; want %+v, 5000", got, p.MaxInstances, want)
	}
	p, err = Parse([]byte("approvers: [U1]\n"), "policy.yml", approval.DefaultRegion)
	if err != nil || p.MaxInstances != approval.DefaultMaxInstances || p.Waves != (approval.WaveRules{}) {
		t.Errorf("defaults: max_instances = %d, waves = %+v, err %v", p.MaxInstances, p.Waves, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"UnknownKey", "approvers: [U1]\naprovers: [U2]\n", "policy.yml:2: unknown key \"aprovers\""},
		{"BadApprover", "approvers: [U1, bob]\n", "policy.yml:1: \"bob\" is not a Slack user ID"},
		{"ApproversNotList", "approvers: U1\n", "policy.yml:1: expected a list"},
		{"ZeroMin", "approvers: [U1]\nmin_approvals: 0\n", "policy.yml:2: expected a whole number from 1 to 20"},
		{"BadTTL", "approvers: [U1]\nrequest_ttl: soon\n", "policy.yml:2: expected a duration"},
		{"BadBool", "approvers: [U1]\nallow_self_approval: yes please\n", "policy.yml:2: expected true or false"},
		{"TooMany", "approvers: [U1]\nmax_instances: 5001\n", "policy.yml:2: expected a whole number from 1 to 5000"},
		{"WavesNotMapping", "approvers: [U1]\nwaves: 10\n", "policy.yml:2: waves must be a mapping"},
		{"WavesUnknownKey", "approvers: [U1]\nwaves:\n  size: 10\n", "policy.yml:3: unknown waves key \"size\""},
		{"WavesRequiredAboveZero", "approvers: [U1]\nwaves: {required_above: 0}\n", "policy.yml:2: expected a whole number from 1 to 5000"},
		{"WavesMaxSizeTooLarge", "approvers: [U1]\nwaves:\n  max_size: 6000\n", "policy.yml:3: expected a whole number from 1 to 5000"},
		{"WavesBadPause", "approvers: [U1]\nwaves:\n  min_pause: soon\n", "policy.yml:3: expected a duration from 0s to 24h0m0s"},
		{"WavesPauseTooLong", "approvers: [U1]\nwaves:\n  min_pause: 25h\n", "policy.yml:3: expected a duration from 0s to 24h0m0s"},
		{"Duplicate", "approvers: [U1]\napprovers: [U2]\n", "policy.yml:2: \"approvers\" appears twice"},
		{"RuleUnknownKey", "approvers: [U1]\nrules:\n  - tags: {env: prod}\n    min_aprovals: 2\n", "policy.yml:4: unknown rule key \"min_aprovals\""},
		{"RuleWithoutTags", "approvers: [U1]\nrules:\n  - min_approvals: 2\n", "policy.yml:3: a rule needs tags"},
		{"BadRegion", "approvers: [U1]\nregions: [Guangzhou]\n", "policy.yml:2: \"Guangzhou\" is not a region name"},
		{"NoApprovers", "min_approvals: 1\n", "approvers must name at least one"},
		{"NotYAML", "approvers: [U1\n", "policy.yml:"},
		{"Empty", "", "policy.yml: the policy file is empty"},
		{"Scalar", "hello\n", "policy.yml:1: the policy must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "policy.yml", approval.DefaultRegion)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yml")
	if err := os.WriteFile(file, []byte(specExample), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		wantErr  string
		wantWarn int
		check    func(*approval.Policy) bool
	}{
		{name: "Nothing", env: map[string]string{}, wantErr: "BOT_POLICY or BOT_APPROVERS must be set"},
		{name: "Approvers", env: map[string]string{"BOT_APPROVERS": "U1,S2", "BOT_MIN_APPROVALS": "2", "BOT_REQUEST_TTL": "1h", "TENCENTCLOUD_REGION": "ap-shanghai"},
			check: func(p *approval.Policy) bool {
				return p.MinApprovals == 2 && p.HardMinApprovals == 2 && p.RequestTTL == time.Hour && p.DefaultRegion == "ap-shanghai" && len(p.Regions) == 0
			}},
		{name: "BadMin", env: map[string]string{"BOT_APPROVERS": "U1", "BOT_MIN_APPROVALS": "two"}, wantErr: "BOT_MIN_APPROVALS"},
		{name: "BadTTL", env: map[string]string{"BOT_APPROVERS": "U1", "BOT_REQUEST_TTL": "-5m"}, wantErr: "BOT_REQUEST_TTL"},
		{name: "BadApprover", env: map[string]string{"BOT_APPROVERS": "U1,alice"}, wantErr: "BOT_APPROVERS: \"alice\""},
		{name: "FileWins", env: map[string]string{"BOT_POLICY": file, "BOT_APPROVERS": "U1", "BOT_MIN_APPROVALS": "3"}, wantWarn: 2,
			check: func(p *approval.Policy) bool { return p.MinApprovals == 1 && len(p.Rules) == 2 }},
		{name: "MissingFile", env: map[string]string{"BOT_POLICY": filepath.Join(dir, "nope.yml")}, wantErr: "BOT_POLICY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, warns, err := FromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) != tt.wantWarn {
				t.Errorf("warnings = %q, want %d", warns, tt.wantWarn)
			}
			if !tt.check(p) {
				t.Errorf("policy = %+v", p)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(specExample))
	f.Add([]byte("approvers: [U1]\nrules: [{tags: {a: b}, deny: true}]\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yml", approval.DefaultRegion)
		if err == nil {
			if verr := p.Validate(); verr != nil {
				t.Fatalf("Parse accepted a policy that does not validate: %v", verr)
			}
		}
	})
}
