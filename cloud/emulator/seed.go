package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
)

// Generate returns n plausible instances in ap-guangzhou, the same ones for
// the same seed: IDs ins-xxxxxxxx, names such as web-prod-01, zones,
// private 10.x addresses, public addresses (from the documentation ranges)
// on the front-end ones, and tags env (prod or staging), team and role. All
// are RUNNING.
func Generate(n int, seed int64) []Instance {
	return generate(n, seed, DefaultRegion)
}

// GenerateFleet returns n instances as Generate does, except that one in
// 40 is STOPPED, as in a real fleet where some machines are parked: a
// selector over it finds instances that cannot be rebooted.
func GenerateFleet(n int, seed int64) []Instance {
	return generateFleet(n, seed, DefaultRegion)
}

func generateFleet(n int, seed int64, region string) []Instance {
	out := generate(n, seed, region)
	for i := range out {
		if i%40 == 39 {
			out[i].State = StateStopped
		}
	}
	return out
}

var (
	roles = []struct{ name, team string }{
		{"web", "storefront"}, {"api", "platform"}, {"db", "data"}, {"cache", "platform"},
		{"worker", "payments"}, {"gateway", "edge"}, {"search", "search"}, {"batch", "data"},
	}
	publicRanges = []string{"203.0.113.", "198.51.100.", "192.0.2."}
)

// zonesOf returns plausible zones of region.
func zonesOf(region string) []string {
	if region == "ap-guangzhou" {
		return []string{"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6", "ap-guangzhou-7"}
	}
	return []string{region + "-1", region + "-2", region + "-3"}
}

func generate(n int, seed int64, region string) []Instance {
	if n <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	zones := zonesOf(region)
	out := make([]Instance, 0, n)
	seen := make(map[string]bool, n)
	counters := map[string]int{}
	public := 0
	for i := 0; i < n; i++ {
		id := randomID(rng)
		for seen[id] {
			id = randomID(rng)
		}
		seen[id] = true
		role := roles[rng.IntN(len(roles))]
		env := "prod"
		if rng.IntN(5) < 2 {
			env = "staging"
		}
		key := role.name + "-" + env
		counters[key]++
		in := Instance{
			ID:         id,
			Name:       fmt.Sprintf("%s-%02d", key, counters[key]),
			Region:     region,
			Zone:       zones[rng.IntN(len(zones))],
			PrivateIPs: []string{privateIP(i)},
			Tags:       map[string]string{"env": env, "team": role.team, "role": role.name},
		}
		if (role.name == "web" || role.name == "gateway") && public < 3*253 {
			in.PublicIPs = []string{publicRanges[public/253] + strconv.Itoa(public%253+1)}
			public++
		}
		if rng.IntN(8) == 0 {
			in.Tags = nil // some instances nobody tagged
		}
		out = append(out, in)
	}
	return out
}

// privateIP returns the i-th address of a 10.0.0.0/8 plan, unique for the
// first 15 million i.
func privateIP(i int) string {
	a := 1 + (i/62500)%254
	b := (i / 250) % 250
	c := i%250 + 4
	return fmt.Sprintf("10.%d.%d.%d", a, b, c)
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomID(rng *rand.Rand) string {
	b := []byte("ins-00000000")
	for i := 4; i < len(b); i++ {
		b[i] = idAlphabet[rng.IntN(len(idAlphabet))]
	}
	return string(b)
}

// seedInstance is one instance in a seed file.
type seedInstance struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Zone       string            `json:"zone"`
	Region     string            `json:"region"`
	State      string            `json:"state"`
	PrivateIPs []string          `json:"private_ips"`
	PublicIPs  []string          `json:"public_ips"`
	Tags       map[string]string `json:"tags"`
}

type seedFile struct {
	Instances []seedInstance `json:"instances"`
}

// maxSeedBytes bounds the seed files LoadSeed reads.
const maxSeedBytes = 64 << 20

// LoadSeed reads instances from a JSON seed file, either a list of
// instances or an object {"instances": [...]}:
//
//	{"instances": [
//	  {"id": "ins-web00001", "name": "web-prod-01", "zone": "ap-guangzhou-3",
//	   "state": "RUNNING", "private_ips": ["10.0.1.12"], "public_ips": ["203.0.113.7"],
//	   "tags": {"env": "prod", "team": "storefront"}},
//	  {"id": "ins-db000001", "region": "ap-shanghai", "state": "STOPPED"}
//	]}
//
// Only "id" is required; the others default as in Instance (region from
// the zone or ap-guangzhou, zone 3 of the region, state RUNNING). Unknown
// fields, malformed IDs, unknown states, bad addresses and duplicate IDs
// are errors that name the file and the instance.
func LoadSeed(path string) ([]Instance, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seed file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSeedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("seed file %s: %w", path, err)
	}
	if len(data) > maxSeedBytes {
		return nil, fmt.Errorf("seed file %s: larger than %d MiB", path, maxSeedBytes>>20)
	}
	list, err := decodeSeed(data)
	if err != nil {
		return nil, fmt.Errorf("seed file %s: %w", path, err)
	}
	out := make([]Instance, len(list))
	seen := make(map[string]int, len(list))
	for i, s := range list {
		in := Instance{
			ID: s.ID, Name: s.Name, Zone: s.Zone, Region: s.Region, State: s.State,
			PrivateIPs: s.PrivateIPs, PublicIPs: s.PublicIPs, Tags: s.Tags,
		}
		if s.ID == "" {
			return nil, fmt.Errorf("seed file %s: instance %d has no \"id\"", path, i+1)
		}
		if _, err := normalize(in); err != nil {
			return nil, fmt.Errorf("seed file %s: instance %d: %w", path, i+1, err)
		}
		if first, dup := seen[s.ID]; dup {
			return nil, fmt.Errorf("seed file %s: instance %d: %s is already instance %d", path, i+1, s.ID, first)
		}
		seen[s.ID] = i + 1
		out[i] = in
	}
	return out, nil
}

// decodeSeed decodes either shape of a seed file.
func decodeSeed(data []byte) ([]seedInstance, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("the file is empty; want a JSON list of instances or {\"instances\": [...]}")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var list []seedInstance
	var err error
	switch trimmed[0] {
	case '[':
		err = dec.Decode(&list)
	case '{':
		var f seedFile
		err = dec.Decode(&f)
		list = f.Instances
	default:
		return nil, errors.New("want a JSON list of instances or {\"instances\": [...]}")
	}
	if err != nil {
		return nil, describeJSONError(data, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return list, nil
}

// describeJSONError turns a decoding error into one that names the line
// and column.
func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("%s: %s", position(data, syn.Offset), syn.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "value"
		}
		return fmt.Errorf("%s: %s must be %s, not %s", position(data, typ.Offset), field, typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the JSON ends too early")
	}
	return err
}

// position renders a byte offset as line:column.
func position(data []byte, offset int64) string {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	line, col := 1, 1
	for _, c := range data[:offset] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d, column %d", line, col)
}
