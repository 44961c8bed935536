// Package config reads a service's .memgate.yml: how to build it, run it,
// know it is ready, read its heap and goroutines, load it, and judge it.
// Every key has a default (see Default) and the README documents each.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/memgate/memgate/gate"
)

// FileName is the config file memgate looks for in a service's directory.
const FileName = ".memgate.yml"

// MaxSize bounds a config file: it is read from repositories memgate does
// not control.
const MaxSize = 1 << 20

// Config is a parsed .memgate.yml.
type Config struct {
	Build      Build           `yaml:"build"`
	Run        Run             `yaml:"run"`
	Readiness  Readiness       `yaml:"readiness"`
	Pprof      Pprof           `yaml:"pprof"`
	Load       Load            `yaml:"load"`
	Sampling   Sampling        `yaml:"sampling"`
	Thresholds gate.Thresholds `yaml:"thresholds"`
	// Compare judges a pull request's head against its base (memgate
	// check --base, and the server's pull request gates).
	Compare gate.CompareLimits `yaml:"compare"`
	// Dependencies start before the service, in its sandbox; see
	// dependencies.go.
	Dependencies map[string]Dependency `yaml:"dependencies"`
}

// Build says how the service is compiled.
type Build struct {
	// Package is the Go package of the service's main, relative to the
	// service directory. Ignored when Command is set.
	Package string `yaml:"package"`
	// Command replaces `go build`; it runs under sh -c in the service
	// directory and must write the binary to {{output}}.
	Command string            `yaml:"command"`
	Flags   []string          `yaml:"flags"` // extra go build flags, e.g. -tags=prod
	Env     map[string]string `yaml:"env"`
	Timeout time.Duration     `yaml:"timeout"`
	// ImportPath is the import path of a repository without go.mod (e.g.
	// github.com/you/service): it is built in GOPATH mode, its source at
	// $GOPATH/src/ImportPath. Ignored when the repository has a go.mod.
	// memgate serve defaults it to github.com/<owner>/<repository>.
	ImportPath string `yaml:"import_path"`
}

// Run says how the built service is started. {{port}} in Args and Env is the
// loopback port memgate chose.
type Run struct {
	Args []string          `yaml:"args"`
	Env  map[string]string `yaml:"env"`
	// Port fixes the port instead of letting memgate pick a free one.
	Port int `yaml:"port"`
	// StopTimeout is how long the service gets after SIGTERM before SIGKILL.
	StopTimeout time.Duration `yaml:"stop_timeout"`
	// MemoryLimit kills the service (and everything it started) when their
	// resident memory passes it; 0 turns the watchdog off.
	MemoryLimit Bytes `yaml:"memory_limit"`
	// MaxProcesses bounds the processes of the service's user (a fork
	// bomb stops there; binding when memgate runs as root, since the
	// service then runs as nobody).
	MaxProcesses uint64 `yaml:"max_processes"`
	// MaxFileSize bounds any one file the service writes.
	MaxFileSize Bytes `yaml:"max_file_size"`
	// Network is "isolated" (a network of its own with only loopback,
	// where the host allows it) or "host" (for services that must reach
	// something outside, e.g. a database).
	Network string `yaml:"network"`
}

// Readiness says when the started service can take load.
type Readiness struct {
	Path    string        `yaml:"path"`
	Timeout time.Duration `yaml:"timeout"`
}

// Pprof says where heap and goroutine numbers are read.
type Pprof struct {
	// Mode: "auto" uses the service's own net/http/pprof when it is really
	// there and otherwise the reader memgate adds to the build; "service"
	// requires the service's pprof; "reader" always uses the added reader.
	Mode string `yaml:"mode"`
	// Address is host:port of the service's pprof when it is not on the
	// service port (may use {{port}}); empty means the service port.
	Address string `yaml:"address"`
	Path    string `yaml:"path"`
}

// Load describes the HTTP load.
type Load struct {
	Rate        float64       `yaml:"rate"`
	Warmup      time.Duration `yaml:"warmup"`
	Duration    time.Duration `yaml:"duration"`
	Cooldown    time.Duration `yaml:"cooldown"`
	Timeout     time.Duration `yaml:"timeout"`
	Connections int           `yaml:"connections"`
	Targets     []Target      `yaml:"targets"`
	// TargetsFile is a vegeta "http" format targets file, relative to the
	// service directory. URLs may be paths ("GET /orders").
	TargetsFile string `yaml:"targets_file"`
	// LeaveEarly makes a share of every ordinary request (the targets
	// file's too) leave before its answer; a target may set its own.
	LeaveEarly *LeaveEarly `yaml:"leave_early"`
}

// Target is one request in the load's rotation.
type Target struct {
	Method  string            `yaml:"method"`
	Path    string            `yaml:"path"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`
	// Stream marks an endpoint whose response does not end (server-sent
	// events, a long poll, a chunked stream).
	Stream     *Stream     `yaml:"stream"`
	LeaveEarly *LeaveEarly `yaml:"leave_early"`
}

// Stream says how long the load holds a stream before it disconnects:
// Hold, or sooner once MaxBytes or MaxEvents have arrived. The request
// succeeds when the response starts with Status.
type Stream struct {
	Hold      time.Duration `yaml:"hold"`
	MaxBytes  Bytes         `yaml:"max_bytes"`
	MaxEvents int           `yaml:"max_events"`
	Status    int           `yaml:"status"`
}

// DefaultStreamHold is a stream's hold when its config gives none: long
// enough for a handler to be well into its loop, short enough that the
// streams held at 200 requests/s stay in the hundreds.
const DefaultStreamHold = 2 * time.Second

// LeaveEarly makes a share of requests leave After they started.
type LeaveEarly struct {
	After time.Duration `yaml:"after"`
	Share float64       `yaml:"share"` // 0 means 1: every request
}

// Sampling says how often the service is read. Zero values mean "auto":
// twenty checkpoints in the judged part of the window, at most one every
// 1 s and at least one every 250 ms, and a reading at least once a second.
// Twenty, not ten: with ten points the p95 of the fluctuation rule is more
// than half the maximum, so one disturbed checkpoint could fail a healthy
// service; with twenty it weighs 5 %.
type Sampling struct {
	// Interval between goroutine and heap readings.
	Interval time.Duration `yaml:"interval"`
	// CheckpointInterval between forced-GC readings of the post-GC heap.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// Effective returns the sampling intervals to use for this load: the
// configured ones, or the automatic ones for zero values.
func (c Config) Effective() Sampling {
	s := c.Sampling
	if s.CheckpointInterval == 0 {
		judged := time.Duration(float64(c.Load.Duration) * c.Thresholds.SteadyFraction)
		s.CheckpointInterval = min(max(judged/20, 250*time.Millisecond), time.Second)
		if s.Interval > s.CheckpointInterval {
			s.CheckpointInterval = s.Interval
		}
	}
	if s.Interval == 0 {
		s.Interval = min(time.Second, s.CheckpointInterval)
	}
	return s
}

// Default is the zero-config gate. Rate, warm-up and duration give a verdict
// in about a minute on a 2-core CI machine: 200 requests/s leaves a core for
// the service while the load generator and sampler share the other; 10 s of
// warm-up covers connection ramp-up, pools and the first GCs; a 40 s window
// gives 20 post-GC checkpoints in its judged second half, enough for
// Mann-Kendall at alpha 0.01 with room, and 8,000 requests, so 128
// bytes/request is 1 MiB of growth, well above the noise of a post-GC heap.
func Default() Config {
	return Config{
		Build:     Build{Package: ".", Timeout: 5 * time.Minute},
		Run:       Run{StopTimeout: 5 * time.Second, MemoryLimit: 2 << 30, MaxProcesses: 1024, MaxFileSize: 1 << 30, Network: "isolated"},
		Readiness: Readiness{Path: "/", Timeout: 30 * time.Second},
		Pprof:     Pprof{Mode: "auto", Path: "/debug/pprof/"},
		Load: Load{
			Rate:        200,
			Warmup:      10 * time.Second,
			Duration:    40 * time.Second,
			Cooldown:    10 * time.Second,
			Timeout:     5 * time.Second,
			Connections: 10,
			Targets:     []Target{{Method: http.MethodGet, Path: "/"}},
		},
		Thresholds: gate.DefaultThresholds(),
		Compare:    gate.DefaultCompareLimits(),
	}
}

// Load reads the config file at path over the defaults.
func LoadFile(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > MaxSize {
		return Config{}, fmt.Errorf("config %s: larger than %d bytes", path, MaxSize)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse reads config YAML over the defaults. Errors name the key and line.
func Parse(data []byte) (Config, error) { return ParseFor(data, Policy{}) }

// ParseWithin is Parse for a gate that must end within budget (see FitIn);
// a config that cannot is an error naming the key to shorten.
func ParseWithin(data []byte, budget time.Duration) (Config, error) {
	return ParseFor(data, Policy{JobTimeout: budget})
}

// ParseFor is Parse for a server's gate: the config must also be Allowed
// by the server's policy; a config that is not is an error naming the key
// and its line.
func ParseFor(data []byte, p Policy) (Config, error) { return parse(data, p) }

func parse(data []byte, p Policy) (Config, error) {
	cfg := Default()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Config{}, cleanYAMLError(err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if err := cfg.Allowed(p); err != nil {
			return Config{}, err
		}
		return cfg, nil
	}
	// Targets given in the file replace the default, not extend it.
	if keyNode(&root, "load", "targets") != nil {
		cfg.Load.Targets = nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, explainTypeError(&root, err)
	}
	cfg.fillKinds()
	cfg.withDependencyDefaults()
	err := cfg.Validate()
	if err == nil {
		err = cfg.Allowed(p)
	}
	if err != nil {
		var ke *KeyError
		if errors.As(err, &ke) {
			if n := keyNode(&root, ke.Path...); n != nil {
				ke.Line = n.Line
			}
		}
		return Config{}, err
	}
	return cfg, nil
}

// fillKinds gives streams and early leaving the defaults of keys left out.
func (c *Config) fillKinds() {
	fill := func(l *LeaveEarly) {
		if l != nil && l.Share == 0 {
			l.Share = 1
		}
	}
	fill(c.Load.LeaveEarly)
	for i := range c.Load.Targets {
		t := &c.Load.Targets[i]
		if t.Stream != nil && t.Stream.Hold == 0 {
			t.Stream.Hold = DefaultStreamHold
		}
		fill(t.LeaveEarly)
	}
}

// KeyError is a config value that cannot be used.
type KeyError struct {
	Path []string
	Line int // 0 when the key is not in the file (a default, or a flag)
	Msg  string
}

func (e *KeyError) Error() string {
	key := strings.Join(e.Path, ".")
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", key, e.Msg)
}

func keyErr(msg string, path ...string) error { return &KeyError{Path: path, Msg: msg} }

var methodRe = regexp.MustCompile(`^[A-Z]+$`)

var importPathRe = regexp.MustCompile(`^[A-Za-z0-9_~][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*$`)

// ValidImportPath: p is a clean import path of plain names (the build
// makes a directory of it under its GOPATH).
func ValidImportPath(p string) bool {
	return importPathRe.MatchString(p) && !slices.ContainsFunc(strings.Split(p, "/"), func(s string) bool { return s == "." || s == ".." })
}

// Validate checks values the YAML types cannot.
func (c Config) Validate() error {
	switch {
	case c.Build.Command == "" && c.Build.Package == "":
		return keyErr("set a package or a command", "build", "package")
	case c.Build.Command != "" && !strings.Contains(c.Build.Command, "{{output}}"):
		return keyErr("the command must write the binary to {{output}}", "build", "command")
	case c.Build.Timeout <= 0:
		return keyErr("must be > 0", "build", "timeout")
	case c.Build.ImportPath != "" && !ValidImportPath(c.Build.ImportPath):
		return keyErr("must be an import path like github.com/you/service", "build", "import_path")
	case c.Run.Port < 0 || c.Run.Port > 65535:
		return keyErr("must be a port number, or 0 to pick a free one", "run", "port")
	case c.Run.StopTimeout <= 0:
		return keyErr("must be > 0", "run", "stop_timeout")
	case c.Run.Network != "isolated" && c.Run.Network != "host":
		return keyErr(fmt.Sprintf("must be isolated or host, not %q", c.Run.Network), "run", "network")
	case !strings.HasPrefix(c.Readiness.Path, "/"):
		return keyErr("must start with /", "readiness", "path")
	case c.Readiness.Timeout <= 0:
		return keyErr("must be > 0", "readiness", "timeout")
	case c.Pprof.Mode != "auto" && c.Pprof.Mode != "service" && c.Pprof.Mode != "reader":
		return keyErr(fmt.Sprintf("must be auto, service or reader, not %q", c.Pprof.Mode), "pprof", "mode")
	case !strings.HasPrefix(c.Pprof.Path, "/"):
		return keyErr("must start with /", "pprof", "path")
	case c.Load.Rate <= 0:
		return keyErr("must be > 0 requests/s", "load", "rate")
	case c.Load.Rate > 50000:
		return keyErr("above 50000 requests/s the load generator, not the service, is measured", "load", "rate")
	case c.Load.Warmup < 0:
		return keyErr("must be >= 0", "load", "warmup")
	case c.Load.Duration < 5*time.Second:
		return keyErr("must be at least 5s to judge a trend", "load", "duration")
	case c.Load.Duration > 2*time.Hour:
		return keyErr("must be at most 2h", "load", "duration")
	case c.Load.Cooldown < 0:
		return keyErr("must be >= 0", "load", "cooldown")
	case c.Load.Timeout <= 0:
		return keyErr("must be > 0", "load", "timeout")
	case c.Load.Connections < 1 || c.Load.Connections > 1000:
		return keyErr("must be between 1 and 1000", "load", "connections")
	case len(c.Load.Targets) == 0 && c.Load.TargetsFile == "":
		return keyErr("give at least one target or a targets_file", "load", "targets")
	case c.Load.TargetsFile != "" && !inRepository(c.Load.TargetsFile):
		return keyErr(fmt.Sprintf("%q must be a path inside the repository (relative, without ..)", c.Load.TargetsFile), "load", "targets_file")
	case c.Sampling.Interval != 0 && c.Sampling.Interval < 50*time.Millisecond:
		return keyErr("must be at least 50ms (or 0 for auto)", "sampling", "interval")
	case c.Sampling.CheckpointInterval != 0 && c.Sampling.CheckpointInterval < c.Effective().Interval:
		return keyErr("must be at least sampling.interval (or 0 for auto)", "sampling", "checkpoint_interval")
	}
	if err := c.Load.LeaveEarly.validate(c.Load.Timeout, "load", "leave_early"); err != nil {
		return err
	}
	for i, t := range c.Load.Targets {
		at := func(key ...string) []string { return append([]string{"load", "targets", strconv.Itoa(i)}, key...) }
		if !methodRe.MatchString(t.Method) {
			return keyErr(fmt.Sprintf("method %q is not an HTTP method", t.Method), at("method")...)
		}
		if !strings.HasPrefix(t.Path, "/") {
			return keyErr(fmt.Sprintf("path %q must start with /", t.Path), at("path")...)
		}
		if err := t.Stream.validate(c.Load.Duration, at("stream")); err != nil {
			return err
		}
		if err := t.LeaveEarly.validate(c.Load.Timeout, at("leave_early")...); err != nil {
			return err
		}
		if t.Stream != nil && t.LeaveEarly != nil {
			return keyErr("a stream is left at its hold: leave_early is for ordinary requests", at("leave_early")...)
		}
	}
	if err := c.validateDependencies(); err != nil {
		return err
	}
	if err := c.Thresholds.Validate(); err != nil {
		key, _, _ := strings.Cut(err.Error(), " ")
		return &KeyError{Path: []string{"thresholds", key}, Msg: err.Error()}
	}
	if err := c.Compare.Validate(); err != nil {
		key, _, _ := strings.Cut(err.Error(), " ")
		return &KeyError{Path: []string{"compare", key}, Msg: err.Error()}
	}
	return nil
}

func (s *Stream) validate(duration time.Duration, at []string) error {
	key := func(k string) []string { return append(append([]string(nil), at...), k) }
	switch {
	case s == nil:
		return nil
	case s.Hold <= 0:
		return keyErr("must be > 0", key("hold")...)
	case s.Hold > duration:
		return keyErr(fmt.Sprintf("must be at most load.duration (%s): a stream held longer is never judged", duration), key("hold")...)
	case s.MaxBytes < 0:
		return keyErr("must be >= 0 (0: no limit)", key("max_bytes")...)
	case s.MaxEvents < 0:
		return keyErr("must be >= 0 (0: no limit)", key("max_events")...)
	case s.Status != 0 && (s.Status < 100 || s.Status > 599):
		return keyErr(fmt.Sprintf("%d is not an HTTP status", s.Status), key("status")...)
	}
	return nil
}

func (l *LeaveEarly) validate(timeout time.Duration, at ...string) error {
	key := func(k string) []string { return append(append([]string(nil), at...), k) }
	switch {
	case l == nil:
		return nil
	case l.After <= 0:
		return keyErr("must be > 0: how long after it started a request is left", key("after")...)
	case l.After >= timeout:
		return keyErr(fmt.Sprintf("must be shorter than load.timeout (%s), or the timeout ends the request first", timeout), key("after")...)
	case l.Share <= 0 || l.Share > 1:
		return keyErr(fmt.Sprintf("must be in (0, 1], not %g", l.Share), key("share")...)
	}
	return nil
}

// inRepository: relative, without "..": the file is read from the
// repository, never from the machine (loadgen checks its body files alike).
func inRepository(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) == "." {
		return false
	}
	return !slices.Contains(strings.Split(name, "/"), "..")
}

// keyNode finds the value node at a path of mapping keys (and sequence
// indexes) under a document node.
func keyNode(root *yaml.Node, path ...string) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return nil
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		default:
			return nil
		}
	}
	return n
}

// keyAtLine returns the dotted key whose value starts on a line.
func keyAtLine(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, line, prefix); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := k.Value
			if prefix != "" {
				name = prefix + "." + k.Value
			}
			if deeper := keyAtLine(v, line, name); deeper != "" {
				return deeper
			}
			if k.Line == line || v.Line == line {
				return name
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if k := keyAtLine(c, line, fmt.Sprintf("%s.%d", prefix, i)); k != "" {
				return k
			}
		}
	}
	return ""
}

var lineRe = regexp.MustCompile(`line (\d+): `)

// explainTypeError rewrites yaml.v3's "line N: cannot unmarshal ..." so it
// names the key as well as the line.
func explainTypeError(root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return cleanYAMLError(err)
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if sm := lineRe.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			if key := keyAtLine(root, line, ""); key != "" && !strings.Contains(m, "not found in type") {
				m = strings.Replace(m, sm[0], sm[0]+key+": ", 1)
			}
		}
		m = strings.ReplaceAll(m, "not found in type config.", "is not a known key in ")
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func cleanYAMLError(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}
