package sweep

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/thinkgen/thinkgen/config"
)

// Spec is a sweep file: which runs to train and how to rank them.
type Spec struct {
	// Name names the sweep: its state lives under sweeps/<Name>/ in the
	// store and its trials are the runs <Name>-t001, <Name>-t002, ….
	Name string
	// Base is the run configuration every trial starts from (a path, read
	// relative to the current directory like every path thinkgen takes).
	Base string
	// Set are overrides applied to every trial, before the trial's own.
	Set []Override
	// Params is the search space, in file order.
	Params []Param
	// Method is how trials are drawn from the space.
	Method Method
	// Seed seeds the random method.
	Seed int64
	// Trials is the number of trials of the random method (the grid has
	// one trial per point of the product).
	Trials int
	// Parallel is how many trials run at once.
	Parallel int
	// EvalRows is the number of held-out rows each trial's final policy is
	// scored on (train --eval-rows).
	EvalRows int
	// Objective ranks the trials.
	Objective Objective
	// EarlyStop, if not nil, stops trials that are clearly losing.
	EarlyStop *EarlyStop
	// Cluster says where trials run.
	Cluster Cluster
}

// Override is one "key=value" of a run configuration; Value is YAML text.
type Override struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func (o Override) String() string { return o.Key + "=" + o.Value }

// Method is how trials are drawn from the search space.
type Method string

// The methods.
const (
	// Grid takes every combination of the parameters' points; the last
	// parameter varies fastest.
	Grid Method = "grid"
	// Random draws Trials points from a generator seeded with Seed: values
	// and stepped ranges uniformly among their points, counted ranges
	// uniformly in [min, max], log ranges log-uniformly.
	Random Method = "random"
)

// Param is one dimension of the search space: a config key and either a
// list of values, a linear range or a logarithmic range.
type Param struct {
	Key  string
	Line int // line of the key in the sweep file
	// Values are YAML texts, used as --set values as they are.
	Values []string
	// Range, if not nil, is a linear (Log false) or logarithmic range.
	Range *Range
	Log   bool
	// Int is true when the key holds an integer: range points are then
	// rounded to integers. Set by Resolve.
	Int bool
}

// Range is a closed interval with either a step (min, min+step, … ≤ max)
// or a count of evenly spaced points (both ends included).
type Range struct {
	Min, Max float64
	Step     float64
	Count    int
}

// Directions of an objective.
const (
	Maximize = "maximize"
	Minimize = "minimize"
)

// EarlyStop configures the median stopping rule (see Median).
type EarlyStop struct {
	// Rule is "median".
	Rule string
	// Metric is the per-step training metric compared between trials
	// (default "reward/mean", the mean reward of the step's rollouts).
	Metric string
	// Direction says whether more of Metric is better (default maximize).
	Direction string
	// MinStep is the first step at which a trial may be stopped (default 1).
	MinStep int
	// MinTrials is how many other trials must have reached a step before
	// it is compared there (default 2).
	MinTrials int
}

// Cluster says where trials run.
type Cluster struct {
	// Mode is "local" (subprocesses of this machine; the default), "ray"
	// (one Ray job per trial) or "kuberay" (one KubeRay RayJob per trial,
	// a whole distributed run each).
	Mode string
	// Ray is the URL of the Ray dashboard (Job Submission API).
	Ray string
	// Command starts thinkgen on the Ray nodes; empty means this binary's
	// path.
	Command string
	// Workdir is the directory the job's entrypoint runs in on the Ray
	// nodes (relative paths of the base config resolve there); empty means
	// the current directory.
	Workdir string
	// CPUs and GPUs are reserved for each trial's job.
	CPUs, GPUs float64
}

// The cluster modes.
const (
	ModeLocal   = "local"
	ModeRay     = "ray"
	ModeKubeRay = "kuberay"
)

// file is the YAML form of a Spec.
type file struct {
	Name      string    `yaml:"name"`
	Base      string    `yaml:"base"`
	Set       yaml.Node `yaml:"set"`
	Space     yaml.Node `yaml:"space"`
	Method    string    `yaml:"method"`
	Seed      int64     `yaml:"seed"`
	Trials    int       `yaml:"trials"`
	Parallel  *int      `yaml:"parallel"`
	EvalRows  *int      `yaml:"eval_rows"`
	Objective struct {
		Metric    string `yaml:"metric"`
		Score     string `yaml:"score"`
		Direction string `yaml:"direction"`
	} `yaml:"objective"`
	EarlyStop *struct {
		Rule      string `yaml:"rule"`
		Metric    string `yaml:"metric"`
		Direction string `yaml:"direction"`
		MinStep   int    `yaml:"min_step"`
		MinTrials int    `yaml:"min_trials"`
	} `yaml:"early_stop"`
	Cluster struct {
		Mode    string  `yaml:"mode"`
		Ray     string  `yaml:"ray"`
		Command string  `yaml:"command"`
		Workdir string  `yaml:"workdir"`
		CPUs    float64 `yaml:"cpus"`
		GPUs    float64 `yaml:"gpus"`
	} `yaml:"cluster"`
}

// nameRE is what a sweep name may hold: its trials' run names add "-tNNN".
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ReadFile reads and checks a sweep file. Errors name the file, and the
// line and key where there is one.
func ReadFile(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sweep: %w", err)
	}
	return Parse(path, data)
}

// Parse reads a sweep from YAML data; name is used in error messages. It
// checks everything that does not need the run configuration (see Resolve
// for the rest).
func Parse(name string, data []byte) (*Spec, error) {
	var f file
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
	}
	s := &Spec{Name: f.Name, Base: f.Base, Method: Method(f.Method), Seed: f.Seed, Trials: f.Trials, Parallel: 1, EvalRows: 20}
	if !nameRE.MatchString(s.Name) {
		return nil, fail("name: %q: want 1-64 letters, digits, '.', '_' or '-'", s.Name)
	}
	if s.Base == "" {
		return nil, fail("base: empty; name the run configuration the trials start from (e.g. configs/tiny.yaml)")
	}
	if f.Parallel != nil {
		s.Parallel = *f.Parallel
	}
	if s.Parallel < 1 {
		return nil, fail("parallel: %d: want at least 1", s.Parallel)
	}
	if f.EvalRows != nil {
		s.EvalRows = *f.EvalRows
	}
	if s.EvalRows < 1 {
		return nil, fail("eval_rows: %d: want at least 1 (the objective is an eval score)", s.EvalRows)
	}
	switch s.Method {
	case "":
		s.Method = Grid
		fallthrough
	case Grid:
		if s.Trials != 0 {
			return nil, fail("trials: %d: the grid method has one trial per point; trials is for method random", s.Trials)
		}
	case Random:
		if s.Trials < 1 {
			return nil, fail("trials: %d: method random needs at least 1 trial", s.Trials)
		}
	default:
		return nil, fail("method: unknown method %q (want grid or random)", f.Method)
	}
	var err error
	if s.Set, err = parseSet(name, &f.Set); err != nil {
		return nil, err
	}
	if s.Params, err = parseSpace(name, &f.Space); err != nil {
		return nil, err
	}
	o := f.Objective
	s.Objective = Objective{Metric: o.Metric, Score: o.Score, Direction: o.Direction}
	if err := s.Objective.check(); err != nil {
		return nil, fail("objective: %v", err)
	}
	if es := f.EarlyStop; es != nil {
		e := &EarlyStop{Rule: es.Rule, Metric: es.Metric, Direction: es.Direction, MinStep: es.MinStep, MinTrials: es.MinTrials}
		if e.Rule != "median" {
			return nil, fail("early_stop.rule: unknown rule %q (want median)", e.Rule)
		}
		e.Metric = cmp.Or(e.Metric, "reward/mean")
		e.Direction = cmp.Or(e.Direction, Maximize)
		if e.Direction != Maximize && e.Direction != Minimize {
			return nil, fail("early_stop.direction: %q: want maximize or minimize", e.Direction)
		}
		if e.MinStep == 0 {
			e.MinStep = 1
		}
		if e.MinStep < 1 {
			return nil, fail("early_stop.min_step: %d: want at least 1", e.MinStep)
		}
		if e.MinTrials == 0 {
			e.MinTrials = 2
		}
		if e.MinTrials < 1 {
			return nil, fail("early_stop.min_trials: %d: want at least 1", e.MinTrials)
		}
		s.EarlyStop = e
	}
	c := f.Cluster
	s.Cluster = Cluster{Mode: c.Mode, Ray: c.Ray, Command: c.Command, Workdir: c.Workdir, CPUs: c.CPUs, GPUs: c.GPUs}
	if s.Cluster.Mode == "" {
		s.Cluster.Mode = ModeLocal
	}
	if err := s.Cluster.check(); err != nil {
		return nil, fail("%v", err)
	}
	return s, nil
}

func (c Cluster) check() error {
	switch c.Mode {
	case ModeLocal, ModeRay, ModeKubeRay:
	default:
		return fmt.Errorf("cluster.mode: unknown mode %q (want local, ray or kuberay)", c.Mode)
	}
	if c.CPUs < 0 || c.GPUs < 0 {
		return fmt.Errorf("cluster.cpus, cluster.gpus: must not be negative (got %g, %g)", c.CPUs, c.GPUs)
	}
	return nil
}

// CheckCluster checks the cluster section once flags have had their say:
// ray mode needs an address.
func (s *Spec) CheckCluster() error {
	if err := s.Cluster.check(); err != nil {
		return err
	}
	if s.Cluster.Mode == ModeRay && s.Cluster.Ray == "" {
		return errors.New("cluster.ray: empty; ray mode needs the URL of the Ray dashboard (or --ray-address)")
	}
	return nil
}

// parseSet reads the set: mapping of key → YAML value, in file order.
func parseSet(name string, n *yaml.Node) ([]Override, error) {
	if n.Kind == 0 {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: set: want a mapping of config keys to values", name, n.Line)
	}
	var out []Override
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		val, err := flowYAML(v)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: set.%s: %w", name, v.Line, k.Value, err)
		}
		out = append(out, Override{Key: k.Value, Value: val})
	}
	return out, nil
}

// parseSpace reads the space: mapping of key → {values|range|log_range}
// (a bare list is short for values).
func parseSpace(name string, n *yaml.Node) ([]Param, error) {
	if n.Kind == 0 || len(n.Content) == 0 {
		return nil, fmt.Errorf("%s: space: empty; name at least one config key to search over", name)
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: space: want a mapping of config keys to values, range or log_range", name, n.Line)
	}
	var ps []Param
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p, err := parseParam(k.Value, k.Line, v)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: space.%s: %w", name, k.Line, k.Value, err)
		}
		if seen[p.Key] {
			return nil, fmt.Errorf("%s:%d: space.%s: the key appears twice", name, k.Line, k.Value)
		}
		seen[p.Key] = true
		ps = append(ps, p)
	}
	return ps, nil
}

func parseParam(key string, line int, v *yaml.Node) (Param, error) {
	p := Param{Key: key, Line: line}
	if v.Kind == yaml.SequenceNode {
		return p, p.setValues(v)
	}
	if v.Kind != yaml.MappingNode {
		return p, errors.New("want values: [...], range: {min, max, step|count} or log_range: {min, max, count}")
	}
	if len(v.Content) != 2 {
		return p, errors.New("want exactly one of values, range, log_range")
	}
	kind, body := v.Content[0].Value, v.Content[1]
	switch kind {
	case "values":
		if body.Kind != yaml.SequenceNode {
			return p, errors.New("values: want a list")
		}
		return p, p.setValues(body)
	case "range", "log_range":
		r, err := parseRange(body, kind == "log_range")
		if err != nil {
			return p, fmt.Errorf("%s: %w", kind, err)
		}
		p.Range, p.Log = r, kind == "log_range"
		return p, nil
	}
	return p, fmt.Errorf("unknown kind %q (want values, range or log_range)", kind)
}

func (p *Param) setValues(seq *yaml.Node) error {
	if len(seq.Content) == 0 {
		return errors.New("values: empty list")
	}
	for _, c := range seq.Content {
		s, err := flowYAML(c)
		if err != nil {
			return fmt.Errorf("values: %w", err)
		}
		p.Values = append(p.Values, s)
	}
	return nil
}

func parseRange(n *yaml.Node, log bool) (*Range, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("want a mapping {min, max, step|count}")
	}
	var raw struct {
		Min   *float64 `yaml:"min"`
		Max   *float64 `yaml:"max"`
		Step  *float64 `yaml:"step"`
		Count *int     `yaml:"count"`
	}
	for i := 0; i < len(n.Content); i += 2 {
		switch k := n.Content[i].Value; k {
		case "min", "max", "count":
		case "step":
			if log {
				return nil, errors.New("unknown key \"step\" (a log range has min, max, count)")
			}
		default:
			return nil, fmt.Errorf("unknown key %q (known keys: min, max, step, count)", k)
		}
	}
	if err := n.Decode(&raw); err != nil {
		return nil, err
	}
	if raw.Min == nil || raw.Max == nil {
		return nil, errors.New("want both min and max")
	}
	r := &Range{Min: *raw.Min, Max: *raw.Max}
	if math.IsNaN(r.Min) || math.IsNaN(r.Max) || math.IsInf(r.Min, 0) || math.IsInf(r.Max, 0) {
		return nil, fmt.Errorf("min %g, max %g: want finite numbers", r.Min, r.Max)
	}
	if r.Min > r.Max {
		return nil, fmt.Errorf("empty range: min %g > max %g", r.Min, r.Max)
	}
	if log && r.Min <= 0 {
		return nil, fmt.Errorf("min %g: a log range needs min > 0", r.Min)
	}
	switch {
	case raw.Step != nil && raw.Count != nil:
		return nil, errors.New("give step or count, not both")
	case raw.Step != nil:
		if !(*raw.Step > 0) {
			return nil, fmt.Errorf("step %g: want > 0", *raw.Step)
		}
		r.Step = *raw.Step
	case raw.Count != nil:
		if *raw.Count < 1 {
			return nil, fmt.Errorf("empty range: count %d (want at least 1)", *raw.Count)
		}
		if *raw.Count == 1 && r.Min != r.Max {
			return nil, fmt.Errorf("count 1 with min %g != max %g: one point cannot span a range", r.Min, r.Max)
		}
		r.Count = *raw.Count
	default:
		if log {
			return nil, errors.New("want count")
		}
		return nil, errors.New("want step or count")
	}
	return r, nil
}

// flowYAML renders a node as one line of YAML (flow style), the form
// --set reads.
func flowYAML(n *yaml.Node) (string, error) {
	c := *n
	setFlow(&c)
	out, err := yaml.Marshal(&c)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func setFlow(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style |= yaml.FlowStyle
	}
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	for i, c := range n.Content {
		cc := *c
		setFlow(&cc)
		n.Content[i] = &cc
	}
}

// Resolve checks the sweep against its base configuration: base loads with
// the sweep's set overrides (and extra, e.g. a --store from the command
// line), every space key names a field of the configuration, and it marks
// integer keys. Errors name the key and its line.
func (s *Spec) Resolve(file string, extra []Override) (*config.Config, error) {
	sets := s.baseSets(extra)
	cfg, err := config.Load(s.Base, sets)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", s.Base, err)
	}
	for i := range s.Params {
		p := &s.Params[i]
		if p.Key == "storage" || strings.HasPrefix(p.Key, "storage.") {
			return nil, fmt.Errorf("%s:%d: space.%s: the trials share the sweep's store; storage keys cannot be searched over", file, p.Line, p.Key)
		}
		if _, err := cfg.Get(p.Key); err != nil {
			if u := errors.Unwrap(err); u != nil {
				err = u
			}
			return nil, fmt.Errorf("%s:%d: space: %w", file, p.Line, err)
		}
		// An integer field takes 0.5 as 0 (the YAML decoder truncates), so
		// a probe tells integer keys from the others.
		probe, err := config.Load(s.Base, sets)
		if err != nil {
			return nil, err
		}
		if probe.Set(p.Key+"=0.5") == nil {
			got, _ := probe.Get(p.Key)
			p.Int = got == "0"
		}
		if !p.Int {
			continue
		}
		if p.Range != nil && p.Range.Step != 0 && p.Range.Step != math.Trunc(p.Range.Step) {
			return nil, fmt.Errorf("%s:%d: space.%s: step %g: the key holds an integer", file, p.Line, p.Key, p.Range.Step)
		}
		for _, v := range p.Values {
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				return nil, fmt.Errorf("%s:%d: space.%s: value %s: the key holds an integer", file, p.Line, p.Key, v)
			}
		}
	}
	return cfg, nil
}

func (s *Spec) baseSets(extra []Override) []string {
	var sets []string
	for _, o := range s.Set {
		sets = append(sets, o.String())
	}
	for _, o := range extra {
		sets = append(sets, o.String())
	}
	return sets
}

// TrialConfig resolves a trial's run configuration: base, the sweep's set,
// extra, then the trial's overrides.
func (s *Spec) TrialConfig(t Trial, extra []Override) (*config.Config, error) {
	sets := s.baseSets(extra)
	for _, o := range t.Overrides {
		sets = append(sets, o.String())
	}
	return config.Load(s.Base, sets)
}

// CheckTrials resolves every trial's configuration (TrialConfig) and
// returns the first error, naming the trial and its overrides.
func (s *Spec) CheckTrials(trials []Trial, extra []Override) error {
	for _, t := range trials {
		if _, err := s.TrialConfig(t, extra); err != nil {
			return fmt.Errorf("trial %s (%s): %w", t.Name, t.Describe(), err)
		}
	}
	return nil
}
