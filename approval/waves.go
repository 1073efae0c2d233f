package approval

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WaveOptions is how a request asks to roll, as the requester typed it:
// --wave, --pause, --max-failures and --by-zone. The zero value asks for
// one wave with no failure budget.
type WaveOptions struct {
	Size            int  // instances per wave; 0 = every instance in one wave (per zone with ByZone)
	SizePercent     bool // Size is a percentage of the set, rounded up
	Pause           time.Duration
	MaxFailures     int  // failures the request may have and still start its next wave
	FailuresPercent bool // MaxFailures is a percentage of the set, rounded down
	ByZone          bool // waves never mix zones
}

// Rolling reports whether o asks for anything but the default.
func (o WaveOptions) Rolling() bool { return o != WaveOptions{} }

// Plan is how an approved request rolls: which instances each wave takes,
// the pause between waves and the failure budget. It is fixed when the
// request is made, so approvers approve the plan together with the set.
type Plan struct {
	Waves       [][]string    `json:"waves"`
	Pause       time.Duration `json:"pause,omitempty"`
	MaxFailures int           `json:"max_failures"`
	ByZone      bool          `json:"by_zone,omitempty"`
	// Asked is the plan as the requester typed it ("--wave 10% --pause 5m"),
	// for the card and the audit.
	Asked string `json:"asked,omitempty"`
}

// Halt is a stop that ends a rolling request before its last wave: who
// asked for it (a user ID, or ActorBot for the failure budget), when, and
// why in words.
type Halt struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// check refuses options that make no sense whatever the policy says.
func (o WaveOptions) check() error {
	switch {
	case o.Size < 0:
		return Errorf(Invalid, "--wave must be a positive number of instances or a percentage such as 10%%.")
	case o.SizePercent && (o.Size < 1 || o.Size > 100):
		return Errorf(Invalid, "--wave %d%% is not a percentage between 1%% and 100%%.", o.Size)
	case o.Pause < 0 || o.Pause > MaxWavePause:
		return Errorf(Invalid, "--pause must be between 0s and 24h; %s is not.", o.Pause)
	case o.MaxFailures < 0:
		return Errorf(Invalid, "--max-failures must be 0 or more.")
	case o.FailuresPercent && o.MaxFailures > 100:
		return Errorf(Invalid, "--max-failures %d%% is more than 100%%.", o.MaxFailures)
	}
	return nil
}

// String renders o as the flags that ask for it.
func (o WaveOptions) String() string {
	var parts []string
	if o.Size > 0 {
		parts = append(parts, "--wave "+strconv.Itoa(o.Size)+percent(o.SizePercent))
	}
	if o.Pause > 0 {
		parts = append(parts, "--pause "+o.Pause.String())
	}
	if o.MaxFailures > 0 {
		parts = append(parts, "--max-failures "+strconv.Itoa(o.MaxFailures)+percent(o.FailuresPercent))
	}
	if o.ByZone {
		parts = append(parts, "--by-zone")
	}
	return strings.Join(parts, " ")
}

func percent(p bool) string {
	if p {
		return "%"
	}
	return ""
}

// newPlan forms the waves of instances as o asks. Without ByZone the
// instances are taken a zone at a time in turn (by zone name, each zone in
// its given order), so that every wave spreads across the zones; with
// ByZone each zone is cut into waves of its own.
func newPlan(instances []Instance, o WaveOptions) *Plan {
	n := len(instances)
	size := o.Size
	if o.SizePercent {
		size = (n*o.Size + 99) / 100
	}
	if size <= 0 || size > n {
		size = n
	}
	budget := o.MaxFailures
	if o.FailuresPercent {
		budget = n * o.MaxFailures / 100
	}
	zones := map[string][]string{}
	for _, in := range instances {
		zones[in.Zone] = append(zones[in.Zone], in.ID)
	}
	names := slices.SortedFunc(func(yield func(string) bool) {
		for z := range zones {
			if !yield(z) {
				return
			}
		}
	}, cmp.Compare)
	p := &Plan{Pause: o.Pause, MaxFailures: budget, ByZone: o.ByZone, Asked: o.String()}
	if o.ByZone {
		for _, z := range names {
			p.Waves = append(p.Waves, chunk(zones[z], min(size, len(zones[z])))...)
		}
		return p
	}
	order := make([]string, 0, n)
	for i := 0; len(order) < n; i++ {
		for _, z := range names {
			if i < len(zones[z]) {
				order = append(order, zones[z][i])
			}
		}
	}
	p.Waves = chunk(order, size)
	return p
}

// chunk cuts ids into slices of size, the last one shorter.
func chunk(ids []string, size int) [][]string {
	var out [][]string
	for len(ids) > 0 {
		k := min(size, len(ids))
		out = append(out, slices.Clone(ids[:k]))
		ids = ids[k:]
	}
	return out
}

// largest returns the size of p's largest wave.
func (p *Plan) largest() int {
	n := 0
	for _, w := range p.Waves {
		n = max(n, len(w))
	}
	return n
}

// checkPlan refuses a request of n instances rolling as plan (nil: one
// wave) that breaks max_instances or the wave rules, naming the rule.
func (p *Policy) checkPlan(n int, plan *Plan) error {
	if n > p.MaxInstances {
		return Errorf(Invalid, "This request selects %d instances; the policy allows at most %d in one request (max_instances).", n, p.MaxInstances)
	}
	waves, largest := 1, n
	if plan != nil {
		waves, largest = len(plan.Waves), plan.largest()
	}
	rules := p.Waves
	if rules.RequiredAbove > 0 && n > rules.RequiredAbove && waves < 2 {
		return Errorf(Invalid, "This request selects %d instances; the policy asks that requests of more than %d roll in waves (waves.required_above). Add `--wave N` or `--wave N%%`.", n, rules.RequiredAbove)
	}
	if rules.MaxSize > 0 && largest > rules.MaxSize {
		return Errorf(Invalid, "A wave of this request would reboot %d instances at once; the policy allows at most %d in one wave (waves.max_size). Use `--wave %d` or less.", largest, rules.MaxSize, rules.MaxSize)
	}
	if rules.MinPause > 0 && waves > 1 && plan.Pause < rules.MinPause {
		return Errorf(Invalid, "This request pauses %s between waves; the policy asks for at least %s (waves.min_pause). Add `--pause %s`.", plan.Pause, rules.MinPause, rules.MinPause)
	}
	return nil
}

// waves returns the instance IDs of each of r's waves: its plan's, or all
// of its instances in one.
func (r *Request) waves() [][]string {
	if r.Plan != nil {
		return r.Plan.Waves
	}
	return [][]string{r.InstanceIDs()}
}

// WaveCount returns how many waves r rolls in.
func (r *Request) WaveCount() int { return len(r.waves()) }

// WaveProgress is where a rolling request is: the wave running or last
// run (1-based; 0 before the first), whether it has finished, and the
// instances rebooted, failed and still waiting.
type WaveProgress struct {
	Wave, Waves               int
	Finished                  bool
	Rebooted, Failed, Waiting int
	NextWaveAt                time.Time // zero unless paused before the next wave
}

// Progress returns r's wave progress.
func (r *Request) Progress() WaveProgress {
	p := WaveProgress{Wave: r.Wave, Waves: r.WaveCount(), Finished: r.WaveFinished, NextWaveAt: r.NextWaveAt}
	for _, run := range r.Runs {
		switch run.State {
		case RunSucceeded:
			p.Rebooted++
		case RunFailed:
			p.Failed++
		default:
			p.Waiting++
		}
	}
	if len(r.Runs) == 0 {
		p.Waiting = len(r.Instances)
	}
	return p
}

// failures counts r's failed instances.
func (r *Request) failures() int {
	n := 0
	for _, run := range r.Runs {
		if run.State == RunFailed {
			n++
		}
	}
	return n
}

// overBudget returns why r must not start another wave because its
// failures exceed its budget, or "".
func (r *Request) overBudget() string {
	if r.Plan == nil {
		return ""
	}
	if f := r.failures(); f > r.Plan.MaxFailures {
		return fmt.Sprintf("%d %s, budget %d, after wave %d of %d", f, plural(f, "failure", "failures"), r.Plan.MaxFailures, r.Wave, r.WaveCount())
	}
	return ""
}

// planText describes plan for the audit: as asked, and the waves it made.
func planText(plan *Plan) string {
	s := fmt.Sprintf("%d waves of at most %d, failure budget %d", len(plan.Waves), plan.largest(), plan.MaxFailures)
	if plan.Pause > 0 {
		s += ", pause " + plan.Pause.String()
	}
	if plan.ByZone {
		s += ", zone by zone"
	}
	return s
}

// HaltText says in words why r stopped or is stopping: who and when, or
// the failure budget's reason; "" without a stop.
func (r *Request) HaltText() string {
	switch {
	case r.Halt == nil:
		return ""
	case r.Halt.By == ActorBot:
		return "stopped by the failure budget (" + r.Halt.Reason + ")"
	}
	return "stopped by " + r.Halt.By + " at " + r.Halt.At.UTC().Format(time.RFC3339)
}

// wavesFinished counts r's finished waves.
func (r *Request) wavesFinished() int {
	if r.WaveFinished {
		return r.Wave
	}
	return max(r.Wave-1, 0)
}
