package emulator_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"rebootbot/cloud/emulator"
)

func TestGenerate(t *testing.T) {
	a := emulator.Generate(200, 7)
	b := emulator.Generate(200, 7)
	if !reflect.DeepEqual(a, b) {
		t.Error("Generate is not deterministic for the same seed")
	}
	if c := emulator.Generate(200, 8); reflect.DeepEqual(a, c) {
		t.Error("Generate gives the same instances for different seeds")
	}
	if got := emulator.Generate(0, 1); len(got) != 0 {
		t.Errorf("Generate(0) = %d instances, want none", len(got))
	}
	ids := map[string]bool{}
	ips := map[string]bool{}
	envs := map[string]int{}
	for _, in := range a {
		if !emulator.ValidInstanceID(in.ID) {
			t.Errorf("ID %q is malformed", in.ID)
		}
		if ids[in.ID] {
			t.Errorf("ID %s repeated", in.ID)
		}
		ids[in.ID] = true
		if len(in.PrivateIPs) != 1 || !strings.HasPrefix(in.PrivateIPs[0], "10.") || ips[in.PrivateIPs[0]] {
			t.Errorf("%s private IPs %v: want one unique 10.x address", in.ID, in.PrivateIPs)
		}
		ips[in.PrivateIPs[0]] = true
		if in.Name == "" || !strings.HasPrefix(in.Zone, "ap-guangzhou-") {
			t.Errorf("%s: name %q zone %q", in.ID, in.Name, in.Zone)
		}
		envs[in.Tags["env"]]++
	}
	if envs["prod"] == 0 || envs["staging"] == 0 || envs[""] == 0 {
		t.Errorf("env tags = %v, want prod, staging and some untagged", envs)
	}
	e := emulator.New(emulator.Config{})
	if err := e.Add(a...); err != nil {
		t.Errorf("generated instances do not load: %v", err)
	}
}

func writeSeed(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadSeed(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    int
	}{
		{"Object", `{"instances": [
			{"id": "ins-web00001", "name": "web-prod-01", "zone": "ap-guangzhou-3", "state": "RUNNING",
			 "private_ips": ["10.0.1.12"], "public_ips": ["203.0.113.7"], "tags": {"env": "prod"}},
			{"id": "ins-db000001", "region": "ap-shanghai", "state": "STOPPED"}]}`, 2},
		{"List", `[{"id": "ins-aaaaaaaa"}]`, 1},
		{"EmptyList", `[]`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins, err := emulator.LoadSeed(writeSeed(t, tt.content))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(ins); got != tt.want {
				t.Fatalf("instances = %d, want %d", got, tt.want)
			}
			e := emulator.New(emulator.Config{})
			if err := e.Add(ins...); err != nil {
				t.Fatalf("Add: %v", err)
			}
		})
	}

	ins, err := emulator.LoadSeed(writeSeed(t, tests[0].content))
	if err != nil {
		t.Fatal(err)
	}
	e := emulator.New(emulator.Config{})
	e.Add(ins...)
	s, _ := e.Status("ins-db000001")
	if s.Region != "ap-shanghai" || s.Zone != "ap-shanghai-3" || s.State != "STOPPED" {
		t.Errorf("ins-db000001 = %s %s %s, want ap-shanghai ap-shanghai-3 STOPPED", s.Region, s.Zone, s.State)
	}
	s, _ = e.Status("ins-web00001")
	if s.Tags["env"] != "prod" || s.PublicIPs[0] != "203.0.113.7" || s.Name != "web-prod-01" {
		t.Errorf("ins-web00001 = %+v", s)
	}
}

func TestLoadSeedErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string // in the error
	}{
		{"Empty", "", "empty"},
		{"NotJSON", "ins-aaaaaaaa\n", "want a JSON list"},
		{"Syntax", "[\n  {\"id\": \"ins-aaaaaaaa\",}\n]", "line 2"},
		{"Truncated", `[{"id": "ins-aaaaaaaa"`, "ends too early"},
		{"WrongType", `[{"id": 12}]`, "id must be string"},
		{"UnknownField", `[{"id": "ins-aaaaaaaa", "nmae": "x"}]`, `unknown field "nmae"`},
		{"NoID", `[{"name": "x"}]`, `instance 1 has no "id"`},
		{"MalformedID", `[{"id": "ins-aaaaaaaa"}, {"id": "ins-1"}]`, "instance 2"},
		{"BadState", `[{"id": "ins-aaaaaaaa", "state": "UP"}]`, `unknown state "UP"`},
		{"BadIP", `[{"id": "ins-aaaaaaaa", "private_ips": ["ten"]}]`, `"ten" is not an IP address`},
		{"Duplicate", `[{"id": "ins-aaaaaaaa"}, {"id": "ins-aaaaaaaa"}]`, "already instance 1"},
		{"Trailing", `[] []`, "after the JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeSeed(t, tt.content)
			_, err := emulator.LoadSeed(path)
			if err == nil {
				t.Fatalf("LoadSeed succeeded, want an error mentioning %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error = %q, want it to name the file and mention %q", err, tt.want)
			}
		})
	}
	if _, err := emulator.LoadSeed(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("LoadSeed of a missing file succeeded")
	}
}
