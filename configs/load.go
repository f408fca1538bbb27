package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	goccy "github.com/goccy/go-yaml"
	goccyparser "github.com/goccy/go-yaml/parser"
	"github.com/siglipd/siglipd/internal/kit"
	"go.yaml.in/yaml/v3"
)

// Error is one problem in a configuration file, located by line and key path.
type Error struct {
	File   string
	Line   int    // 0 when the problem has no line (a required key that is absent)
	Column int    // 0 when only the line is known
	Path   string // e.g. cameras[1].labels[0].threshold
	Msg    string
	// Source shows the line in question with a caret under the column
	// (syntax errors), printed under the message; "" when not shown.
	Source string
}

func (e Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
		if e.Column > 0 {
			loc += ":" + strconv.Itoa(e.Column)
		}
	}
	msg := loc + ": " + clip(e.Msg, maxMsgWidth)
	if e.Path != "" {
		msg = loc + ": " + clip(e.Path, maxPathWidth) + ": " + clip(e.Msg, maxMsgWidth)
	}
	if e.Source != "" {
		msg += "\n" + e.Source
	}
	return msg
}

// A key path or a message quoting a value can be as long as the file (a
// key of a megabyte); Error shows at most this many characters of each,
// the start and the end.
const (
	maxPathWidth = 120
	maxMsgWidth  = 300
)

// clip shortens s to at most n characters: its first two thirds and its
// last third, joined by "…".
func clip(s string, n int) string {
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
		return s
	}
	head, tail := 2*n/3, n-2*n/3-1
	i := 0
	for range head {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	j := len(s)
	for range tail {
		_, size := utf8.DecodeLastRuneInString(s[:j])
		j -= size
	}
	return s[:i] + "…" + s[j:]
}

// Errors is every problem found in one file, in file order.
type Errors []Error

// MaxReported is how many problems Errors.Lines shows before "… and N
// more": a file of nonsense would otherwise print a line per key.
const MaxReported = 50

// Lines returns the problems one per line: the first MaxReported, then a
// line that counts the rest.
func (es Errors) Lines() []string {
	lines := make([]string, 0, min(len(es), MaxReported+1))
	for i, e := range es {
		if i == MaxReported {
			lines = append(lines, fmt.Sprintf("… and %d more", len(es)-MaxReported))
			break
		}
		lines = append(lines, e.Error())
	}
	return lines
}

func (es Errors) Error() string { return strings.Join(es.Lines(), "\n") }

// MaxFileSize is the largest configuration file siglipd reads. A real one
// is a few KiB; the cap turns a wrong path (a log, a disk image, /dev/zero)
// into a clear error at once instead of memory without bound.
const MaxFileSize = 1 << 20

// Load reads, substitutes and validates the configuration file at path.
// On failure the error is an Errors listing every problem, or a plain error
// when the file cannot be read at all.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(path, data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	cfg.resolvePaths(filepath.Dir(path))
	return cfg, nil
}

// readFile reads at most MaxFileSize bytes of path (a FIFO or a device too,
// as <(…) and /dev/stdin are fine), failing on more.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, errors.Unwrap(err))
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("config %s: larger than %s, the most siglipd reads (is it the right file?)", path, ByteSize(MaxFileSize))
	}
	return data, nil
}

// resolvePaths makes relative file paths relative to the config file's
// folder rather than to wherever the daemon was started from, so a config
// and the files it names can move together.
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.StateDir)
	abs(&c.Model.Path)
	abs(&c.Inference.ORTLib)
	abs(&c.MQTT.TLS.CAFile)
	abs(&c.MQTT.TLS.CertFile)
	abs(&c.MQTT.TLS.KeyFile)
	abs(&c.Inference.Remote.TLS.CAFile)
	abs(&c.Inference.Remote.TLS.CertFile)
	abs(&c.Inference.Remote.TLS.KeyFile)
	for i := range c.Cameras {
		u := string(c.Cameras[i].URL)
		if kind, _ := kit.ParseSource(u); kind == kit.SourceFile && !strings.Contains(u, "://") {
			abs(&u)
			c.Cameras[i].URL = URL(u)
		}
	}
}

// Parse is Load on bytes: name labels the errors, lookupEnv resolves ${VAR}.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	nodes, perr := prescan(name, data)
	if perr != nil {
		perr.Source = caretAt(data, perr.Line, perr.Column)
		return nil, Errors{*perr}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, Errors{syntaxError(name, data, nodes, err)}
	}
	// A second document ("---") would be ignored: say so instead.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, Errors{syntaxError(name, data, nodes, err)}
	default:
		return nil, Errors{{File: name, Line: next.Line, Msg: "a second YAML document (---): siglipd reads one; put everything in the first"}}
	}
	cfg := Default()
	d := &decoder{file: name, lookupEnv: lookupEnv, lines: map[string]int{}, defaults: cfg.Defaults,
		misspelt: map[string]bool{}, mergedFrom: map[string]int{}, failed: map[string]bool{}}
	if len(doc.Content) > 0 {
		d.decode(doc.Content[0], reflect.ValueOf(&cfg).Elem(), "")
	}
	errs := d.errs
	if d.visits <= maxVisits && !d.stopped { // else the config is partial: Validate would only add noise
		errs = append(errs, d.validate(&cfg)...)
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		if len(errs) >= maxProblems {
			stop := Error{File: name, Msg: fmt.Sprintf("stopped looking after %d problems (is this the right file?); the first follow", maxProblems)}
			errs = append(Errors{stop}, errs[:maxProblems]...)
		}
		return nil, errs
	}
	cfg.resolve()
	cfg.source.file, cfg.source.lines = name, d.lines
	return &cfg, nil
}

// validate returns Validate's problems that decoding has not reported
// already, located by the lines decoding saw.
func (d *decoder) validate(cfg *Config) Errors {
	var errs Errors
	for _, fe := range cfg.Validate() {
		if d.failedAt(fe.Path) || d.misspelt[fe.Path] {
			continue // already reported: the value could not be decoded, or its key is misspelt
		}
		if from, ok := d.mergedFrom[fe.Path]; ok {
			fe.Msg += fmt.Sprintf(" (merged from line %d)", from)
		}
		errs = append(errs, Error{File: d.file, Line: lineOf(d.lines, fe.Path), Path: fe.Path, Msg: fe.Msg})
	}
	return errs
}

// resolve writes derived defaults into the config, so what --check prints
// and what the stages receive are the values really in force.
func (c *Config) resolve() {
	for i := range c.Cameras {
		cam := &c.Cameras[i]
		if cam.OpenTimeout == 0 {
			cam.OpenTimeout = Duration(kit.OpenTimeoutFor(cam.ReadTimeout.D()))
		}
		if cam.Crop != nil && cam.Crop.Units == "" {
			cam.Crop.Units = "normalized"
		}
		for j := range cam.Labels {
			l := &cam.Labels[j]
			off := l.EffectiveOffThreshold()
			l.OffThreshold = &off
			l.Prompts = l.EffectivePrompts()
		}
	}
}

// The largest file goccy/go-yaml reads to locate a syntax error; a real
// configuration is a few KiB and a few hundred values. What goccy costs at
// these bounds is measured by TestParseCost.
const (
	goccyMaxBytes = 256 << 10
	goccyMaxNodes = 20_000
)

// syntaxError locates a YAML syntax error. yaml.v3 often reports the line
// where the construct around the problem began, and for parser errors one
// line early: a tab on line 5 came out as line 4, a bad indent on line 8 as
// line 5, an unclosed [ on line 3 as line 2. So the text is parsed again
// with goccy/go-yaml, which reports the token where it stopped, with its
// column. A parser notices a problem at or after where it is, never before,
// so the later of the two lines is where to look; its message goes with it.
//
// goccy/go-yaml costs about 100 times the file's size, more where it nests
// (it builds a path string for every node), so it reads only files of real
// configuration size: at most goccyMaxBytes and goccyMaxNodes values as
// prescan counts them. A larger file gets yaml.v3's line alone.
func syntaxError(name string, data []byte, nodes int, err error) Error {
	e := v3SyntaxError(name, err)
	var syn *goccy.SyntaxError
	if gerr := goccyParse(data, nodes); errors.As(gerr, &syn) && syn.Token != nil && syn.Token.Position != nil {
		if pos := syn.Token.Position; pos.Line >= e.Line {
			msg := syn.Message
			if strings.Contains(msg, "\t") {
				msg = "a tab character: YAML indents with spaces only"
			}
			e = Error{File: name, Line: pos.Line, Column: pos.Column, Msg: "invalid YAML: " + msg}
		}
	}
	if e.Line > 0 {
		e.Source = caretAt(data, e.Line, e.Column)
	}
	return e
}

// goccyParse returns goccy/go-yaml's error for data, or nil when data is
// larger or deeper than it may read.
func goccyParse(data []byte, nodes int) error {
	if len(data) > goccyMaxBytes || nodes > goccyMaxNodes || roughDepth(data) > goccyMaxDepth {
		return nil
	}
	_, err := goccyparser.ParseBytes(data, 0)
	return err
}

// goccyMaxDepth bounds roughDepth for goccy/go-yaml to read a file: its
// costs grow with the depth (a path string for every node, as long as the
// keys above it), and it reads some YAML its own way (a NEL is no line
// break to it), so a count that no reading of quotes, comments or block
// scalars can mislead must find the file shallow too.
const goccyMaxDepth = 2 * MaxDepth

// roughDepth is a bound on how deep any parser can find data, whatever it
// takes for quotes, comments or block scalars: the most [ and { open at
// once, the most - ? : indicators at the start of a line, and the lines
// that hold a tag or are an indicator alone (goccy nests the lines after
// those deeper). Nesting by indentation alone is left out: it costs a line
// per level, so a file goccy reads has few levels of it.
func roughDepth(data []byte) int {
	open, most, compact, chained := 0, 0, 0, 0
	for rest := data; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		for _, b := range line {
			switch b {
			case '[', '{':
				open++
				most = max(most, open)
			case ']', '}':
				open = max(open-1, 0)
			}
		}
		t, n := bytes.TrimLeft(line, " \t"), 0
		for len(t) > 0 && (t[0] == '-' || t[0] == '?' || t[0] == ':') && (len(t) == 1 || t[1] == ' ' || t[1] == '\t') {
			t, n = bytes.TrimLeft(t[1:], " \t\r"), n+1
		}
		compact = max(compact, n)
		if n > 0 && len(t) == 0 || bytes.HasPrefix(t, []byte("!")) || bytes.Contains(t, []byte(" !")) || bytes.Contains(t, []byte("\t!")) {
			chained++
		}
	}
	return most + compact + chained
}

// sourceWidth is how many characters of a line an error shows: a window
// around the column, so a line of a megabyte prints as one readable line.
const sourceWidth = 120

// caretAt shows line (1-based) of data, and the one before it, with a caret
// under column (1-based, in characters; 0: no caret). Tabs show as "→":
// they are often the problem, and they would shift the caret. A line longer
// than sourceWidth shows the window around the column, "…" where cut.
func caretAt(data []byte, line, column int) string {
	prev, cur, ok := linesAt(data, line)
	if !ok {
		return ""
	}
	from := 0 // the first character shown: the line's start, unless the column is far along it
	if column > sourceWidth*3/4 {
		from = column - 1 - sourceWidth/2
	}
	var b strings.Builder
	if line > 1 {
		fmt.Fprintf(&b, "  %4d | %s\n", line-1, window(prev, from))
	}
	fmt.Fprintf(&b, "> %4d | %s", line, window(cur, from))
	if column > 0 {
		pad := column - 1 - from
		if from > 0 {
			pad++ // the "…"
		}
		fmt.Fprintf(&b, "\n       | %s^", strings.Repeat(" ", pad))
	}
	return b.String()
}

// linesAt returns line n (1-based) of data and the one before it, without
// their line ends.
func linesAt(data []byte, n int) (prev, cur []byte, ok bool) {
	if n < 1 {
		return nil, nil, false
	}
	start := 0
	for i := 1; i < n; i++ {
		end := bytes.IndexByte(data[start:], '\n')
		if end < 0 {
			return nil, nil, false
		}
		prev, start = data[start:start+end], start+end+1
	}
	cur = data[start:]
	if end := bytes.IndexByte(cur, '\n'); end >= 0 {
		cur = cur[:end]
	}
	return bytes.TrimSuffix(prev, []byte("\r")), bytes.TrimSuffix(cur, []byte("\r")), true
}

// window returns sourceWidth characters of line from character from, with
// "…" where it cuts, tabs as "→", other control characters (and bytes
// that are not UTF-8) as "�".
func window(line []byte, from int) string {
	i := 0
	for n := 0; n < from && i < len(line); n++ {
		_, size := utf8.DecodeRune(line[i:])
		i += size
	}
	j := i
	for n := 0; n < sourceWidth && j < len(line); n++ {
		_, size := utf8.DecodeRune(line[j:])
		j += size
	}
	s := strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return '→'
		case unicode.IsControl(r):
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(string(line[i:j]), "\uFFFD"))
	if from > 0 {
		s = "…" + s
	}
	if j < len(line) {
		s += "…"
	}
	return s
}

// v3SyntaxError turns yaml.v3's "yaml: line 3: ..." into our file:line form.
func v3SyntaxError(name string, err error) Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return Error{File: name, Line: n, Msg: "invalid YAML: " + tail}
			}
		}
	}
	return Error{File: name, Msg: "invalid YAML: " + msg}
}

// decoder walks the YAML node tree onto a Go value that already holds the
// defaults. Unlike yaml.Decoder it keeps going after a bad value, so a file
// with five mistakes reports five errors, and it remembers the line of every
// key path for Validate's errors.
type decoder struct {
	file      string
	lookupEnv func(string) (string, bool)
	errs      Errors
	lines     map[string]int
	defaults  LabelDefaults // label_defaults as decoded so far, for new labels
	// visits counts the nodes decoded, aliases and merges followed each
	// time: a few aliases can stand for billions of nodes ("billion
	// laughs"), so decoding stops at maxVisits.
	visits int
	// mergedAt is the line of the "<<" key whose merged values are being
	// decoded (0: none). Their problems are reported there, where the
	// value takes effect, naming the anchor's line too.
	mergedAt int
	// misspelt are the key paths an unknown key was probably meant as
	// ("lables" → cameras[0].labels): Validate's "is required" for them
	// would only repeat the typo's error.
	misspelt map[string]bool
	// mergedFrom is the line each merged value was written on, by key path.
	mergedFrom map[string]int
	// failed are the key paths whose value could not be decoded.
	failed map[string]bool
	// stopped: maxProblems were found; decoding stopped there.
	stopped bool
}

// maxProblems is how many problems Parse collects before it stops looking:
// a file with more is not a configuration being edited, and each problem
// costs memory (45,000 empty cameras, which prescan lets through, have
// 135,000).
const maxProblems = 1000

// maxVisits bounds the nodes one file may decode to, aliases expanded. A
// large real configuration (100 cameras × 20 labels) is about 10,000, and
// prescan lets through no more than maxNodes without aliases; what a file
// at the bound costs is measured by TestParseCost.
const maxVisits = 2 * maxNodes

// budget counts one visit and reports false, once with an error, when the
// file expands to more than maxVisits nodes.
func (d *decoder) budget(n *yaml.Node) bool {
	return d.spend(n, 1)
}

// spend counts k visits, as budget does.
func (d *decoder) spend(n *yaml.Node, k int) bool {
	if d.visits > maxVisits || d.stopped {
		return false
	}
	d.visits += k
	if d.visits > maxVisits {
		d.fail(n, "", "aliases expand to more than %d values (a YAML alias bomb?); write the file out instead", maxVisits)
		return false
	}
	return true
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	if len(d.errs) >= maxProblems {
		d.stopped = true
		return
	}
	line, msg := n.Line, fmt.Sprintf(format, args...)
	if d.mergedAt != 0 && d.mergedAt != n.Line {
		line, msg = d.mergedAt, fmt.Sprintf("%s (merged from line %d)", msg, n.Line)
	}
	d.errs = append(d.errs, Error{File: d.file, Line: line, Path: path, Msg: msg})
	if path != "" {
		d.failed[path] = true
	}
}

// lineOf finds the line of path in lines, or of its closest parent present
// in the file; 0 when none is.
func lineOf(lines map[string]int, path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := lines[p]; ok {
			return l
		}
	}
	return 0
}

// failedAt reports whether decoding already failed at path or a parent of
// it: a lookup per parent, as a file can have many errors of both kinds.
func (d *decoder) failedAt(path string) bool {
	for p := path; p != ""; p = parentPath(p) {
		if d.failed[p] {
			return true
		}
	}
	return false
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

var (
	durationType = reflect.TypeOf(Duration(0))
	byteSizeType = reflect.TypeOf(ByteSize(0))
	configType   = reflect.TypeOf(Config{})
	cameraType   = reflect.TypeOf(Camera{})
	labelType    = reflect.TypeOf(Label{})
	defaultsType = reflect.TypeOf(LabelDefaults{})
)

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.budget(n) {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		d.lines[path] = n.Line
		if d.mergedAt != 0 && d.mergedAt != n.Line {
			d.lines[path], d.mergedFrom[path] = d.mergedAt, n.Line
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with no value keeps the default
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
		if v.Type() == defaultsType {
			d.defaults = v.Interface().(LabelDefaults)
		}
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of keys, got %s", describe(n))
		return
	}
	pairs := d.mappingPairs(n, path)
	if v.Type() == configType {
		// Labels start from label_defaults, so decode it before cameras
		// wherever it appears in the file.
		sort.SliceStable(pairs, func(i, j int) bool {
			return pairs[i].key.Value == "label_defaults" && pairs[j].key.Value != "label_defaults"
		})
	}
	fields := yamlFields(v.Type())
	for _, kv := range pairs {
		key, val := kv.key, kv.val
		p := joinPath(path, key.Value)
		outer := d.mergedAt
		if kv.mergedAt != 0 && outer == 0 {
			d.mergedAt = kv.mergedAt
		}
		idx, ok := fields[key.Value]
		if !ok {
			msg := "unknown key"
			if s := closest(key.Value, v.Type()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
				d.misspelt[joinPath(path, s)] = true
			}
			d.fail(key, p, "%s", msg)
		} else {
			d.decode(val, v.Field(idx), p)
		}
		d.mergedAt = outer
	}
}

// pair is a key and its value in a mapping; mergedAt is the line of the
// "<<" that brought it in (0 for the mapping's own keys).
type pair struct {
	key, val *yaml.Node
	mergedAt int
}

// mappingPairs returns the key/value pairs of a mapping with YAML merge keys
// ("<<: *anchor") expanded, the mapping's own keys winning over merged ones.
func (d *decoder) mappingPairs(n *yaml.Node, path string) []pair {
	var merged, own []pair
	firstLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if !d.budget(key) {
			return nil
		}
		if l, dup := firstLine[key.Value]; dup && key.Tag != "!!merge" {
			d.fail(key, joinPath(path, key.Value), "duplicate key (first at line %d)", l)
			continue
		}
		firstLine[key.Value] = key.Line
		if key.Kind == yaml.ScalarNode && key.Tag == "!!merge" {
			sources := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				sources = val.Content
			}
			for _, s := range sources {
				if s.Kind == yaml.AliasNode {
					s = s.Alias
				}
				if s.Kind != yaml.MappingNode {
					d.fail(s, path, "merge key << needs a mapping, got %s", describe(s))
					continue
				}
				for _, kv := range d.mappingPairs(s, path) {
					kv.mergedAt = key.Line // the outermost "<<" is where it takes effect
					merged = append(merged, kv)
				}
			}
			continue
		}
		own = append(own, pair{key: key, val: val})
	}
	if len(merged) == 0 {
		return own
	}
	seen := map[string]bool{}
	for _, kv := range own {
		seen[kv.key.Value] = true
	}
	out := own
	for _, kv := range merged {
		if !seen[kv.key.Value] {
			out = append(out, kv)
			seen[kv.key.Value] = true
		}
	}
	return out
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", describe(n))
		return
	}
	if d.visits+len(n.Content) > maxVisits {
		d.spend(n, len(n.Content)) // too many items to make room for: fails
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		elem := out.Index(i)
		switch v.Type().Elem() {
		case cameraType:
			elem.Set(reflect.ValueOf(defaultCamera()))
		case labelType:
			elem.Set(reflect.ValueOf(defaultLabel(d.defaults)))
		}
		d.decode(item, elem, fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(out)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected %s, got %s", kindName(v.Type()), describe(n))
		return
	}
	s, err := expandEnv(n.Value, d.lookupEnv)
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	switch {
	case v.Type() == durationType:
		dur, err := parseDuration(s)
		if err != nil {
			d.fail(n, path, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(dur))
		return
	case v.Type() == byteSizeType:
		b, err := parseByteSize(s)
		if err != nil {
			d.fail(n, path, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(b))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.fail(n, path, "expected true or false, got %q", s)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			d.fail(n, path, "expected a whole number, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d.fail(n, path, "expected a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, "internal error: no decoder for %s", v.Type())
	}
}

// fieldsOf caches yamlFields by type: a file of many cameras would
// otherwise build the same map for each (TestParseCost).
var fieldsOf sync.Map // reflect.Type → map[string]int

// yamlFields maps yaml tag names to field indexes. The map is shared: read
// it, never change it.
func yamlFields(t reflect.Type) map[string]int {
	if m, ok := fieldsOf.Load(t); ok {
		return m.(map[string]int)
	}
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			m[name] = i
		}
	}
	fieldsOf.Store(t, m)
	return m
}

// closest suggests the field name nearest to a misspelt key.
func closest(key string, t reflect.Type) string {
	best, bestDist := "", 3 // suggest only within two edits
	for name := range yamlFields(t) {
		if abs(len(key)-len(name)) >= bestDist {
			continue // at least that many edits: spare the quadratic count (a key can be a megabyte)
		}
		if dist := editDistance(key, name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	return best
}

func abs(n int) int { return max(n, -n) }

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	}
	return "a value"
}

// expandEnv replaces ${VAR} and ${VAR:-default} with the environment's value;
// "$$" is a literal "$". An unset variable without a default is an error, so
// a missing secret is caught at load, not at the first connection attempt.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", s)
			}
			expr := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(expr, ":-")
			if !validEnvName(name) {
				return "", fmt.Errorf("invalid environment variable name %q in ${%s}", name, expr)
			}
			val, ok := lookup(name)
			switch {
			case ok && (val != "" || !hasDef):
				b.WriteString(val)
			case hasDef:
				b.WriteString(def)
			default:
				return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} for a fallback)", name, name)
			}
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		alpha := r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z')
		if !alpha && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}
