package configs

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxDepth is how deeply a configuration may nest mappings, lists and flow
// collections ([ ] and { }), counted together. siglipd's own deepest key
// (cameras[0].labels[0].prompts[0]) is six levels down, which prescan
// counts as six or seven (TestPrescanDepth); a file nested ten times
// deeper is not a configuration.
const MaxDepth = 64

// maxNodes bounds the keys and values a file may hold, as prescan counts
// them (an estimate from above). A large real configuration (100 cameras ×
// 20 labels) counts about 33,000; what a file at the bound costs Parse is
// measured by TestParseCost.
const maxNodes = 100_000

// prescan reads the bytes of a YAML file once, before either YAML library
// sees them, and rejects a file nested deeper than MaxDepth or holding more
// than maxNodes values. Both libraries build their tree before anything can
// look at it, and goccy/go-yaml's costs grow with the square of the depth
// (a 100,000-deep list of 200 KB takes it 15 GB), so the bound must come
// first. It returns the values counted.
//
// prescan knows YAML's lexical structure well enough to follow it in any
// file both libraries accept (FuzzPrescan holds it to that): quoted
// scalars ('…' with a quote inside doubled, "…" with \ escapes, over
// several lines too), comments, block scalars (| and >, by indentation),
// plain scalars and their continuation lines, block indentation and the
// - ? : indicators. Where it is unsure it counts a level too many, never
// one too few: a bracket inside a plain scalar counts while the scalar
// lasts. Where goccy/go-yaml reads YAML its own way and nests deeper than
// yaml.v3, it counts goccy's levels.
func prescan(name string, data []byte) (int, *Error) {
	s := scan(name, data)
	return s.nodes, s.err
}

// scan runs the scanner over data, stopping at the first problem.
func scan(name string, data []byte) *scanner {
	s := &scanner{file: name, contHolder: noHolder}
	for pos, line := 0, 1; pos <= len(data) && s.err == nil; line++ {
		end, next := lineEnd(data, pos)
		s.line, s.text = line, data[pos:end]
		if i, r := control(s.text); i >= 0 {
			// yaml.v3 refuses it too, but without saying where; and
			// goccy/go-yaml reads some (a NUL) its own way.
			s.fail(i, "a control character (%U): YAML allows none here (is this the right file?)", r)
			break
		}
		s.scanLine(s.text)
		pos = next
	}
	return s
}

// lineEnd finds the end of the line that begins at data[pos] and where the
// next line begins. Lines end as yaml.v3 ends them: at \n, \r\n, \r, and
// the Unicode breaks NEL, LS and PS (a comment ends there too).
func lineEnd(data []byte, pos int) (end, next int) {
	for i := pos; i < len(data); i++ {
		switch b := data[i]; {
		case b == '\n':
			return i, i + 1
		case b == '\r' && i+1 < len(data) && data[i+1] == '\n':
			return i, i + 2
		case b == '\r':
			return i, i + 1
		case b == 0xc2 && i+1 < len(data) && data[i+1] == 0x85: // NEL
			return i, i + 2
		case b == 0xe2 && i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xa8 || data[i+2] == 0xa9): // LS, PS
			return i, i + 3
		}
	}
	return len(data), len(data) + 1
}

// control finds the first character of line that YAML does not allow: a
// C0 or C1 control other than tab (and NEL, a line break), or DEL. It
// returns its index and the character, or -1.
func control(line []byte) (int, rune) {
	for i, b := range line {
		switch {
		case b < 0x20 && b != '\t' || b == 0x7f:
			return i, rune(b)
		case b == 0xc2 && i+1 < len(line) && line[i+1] >= 0x80 && line[i+1] <= 0x9f && line[i+1] != 0x85:
			return i, rune(line[i+1])
		}
	}
	return -1, 0
}

// noHolder marks "no collection": a top-level node's parent indentation.
const noHolder = -1

// level is one block collection open on the stack: its column, and whether
// it is a list ("- ") or a mapping (or a scalar's column: counted the same).
// An empty item is the level goccy/go-yaml opens for a "-" that ends its
// line: lines after it, at its column too, are inside the item, up to the
// next "-" there.
type level struct {
	col             int
	list, emptyItem bool
}

// blockScalar is a | or > scalar being skipped: its content is every
// line indented at least indent (found from the first non-blank line
// unless the header gave it), and blank lines.
type blockScalar struct {
	on     bool
	holder int // the indentation of the collection holding it
	indent int // 0 until known
}

type scanner struct {
	file string
	line int
	text []byte // the line
	err  *Error

	blocks  []level
	flow    int    // [ and { open
	kinds   []byte // which, innermost last (at most the first MaxDepth+1)
	deepest int    // the most levels open at once
	nodes   int

	block blockScalar
	quote byte // ' or " while a quoted scalar runs on to the next line

	// A plain scalar (unquoted) in progress: inPlain; in block context it
	// may go on over the next lines indented more than contHolder.
	inPlain    bool
	contHolder int
	// literal counts the [ and { not yet closed inside the plain scalar
	// in progress: YAML reads them as text, but they count towards the
	// depth in case a parser does not.
	literal int

	// quoteAt is where the quoted scalar running on began: after it ends,
	// the line goes on as the one it began on would have.
	quoteAt struct{ holder, node int }

	// keyFlow is how deep the flow collections of the node in block
	// context now in progress went: when a ":" makes that node a key, the
	// mapping it opens holds them ("{a}: b" nests two deep, and the
	// mapping is only known after the collection is closed).
	keyFlow int
}

// fail records the first problem at byte col of the current line.
func (s *scanner) fail(col int, format string, args ...any) {
	if s.err == nil {
		column := utf8.RuneCount(s.text[:min(col, len(s.text))]) + 1 // in characters, as Error's are
		s.err = &Error{File: s.file, Line: s.line, Column: column, Msg: fmt.Sprintf(format, args...)}
	}
}

func (s *scanner) checkDepth(col int) {
	s.deepest = max(s.deepest, len(s.blocks)+s.flow+s.literal)
	if s.flow > 0 && s.flow+s.literal > s.keyFlow {
		s.keyFlow = s.flow + s.literal
	}
	if s.deepest > MaxDepth {
		s.fail(col, "nesting deeper than %d levels (is this the right file?)", MaxDepth)
	}
}

func (s *scanner) count(col int) {
	s.nodes++
	if s.nodes == maxNodes+1 {
		s.fail(col, "more than %d keys and values (is this the right file?)", maxNodes)
	}
}

func space(b byte) bool { return b == ' ' || b == '\t' }

// indicator reports whether text[i] is followed by a space or the end of
// the line, as the - ? : indicators must be.
func indicator(text []byte, i int) bool { return i+1 >= len(text) || space(text[i+1]) }

func (s *scanner) scanLine(text []byte) {
	ind := 0
	for ind < len(text) && text[ind] == ' ' {
		ind++
	}
	blank := ind == len(text)
	if s.block.on {
		switch {
		case blank:
			return
		case s.block.indent == 0 && ind > s.block.holder && ind > 0:
			s.block.indent = ind
			return
		case s.block.indent > 0 && ind >= s.block.indent:
			return
		}
		s.block.on = false
	}
	if s.quote != 0 {
		s.inline(text, s.closeQuote(text, 0), s.quoteAt.holder, s.quoteAt.node, false)
		return
	}
	if s.flow > 0 {
		s.inline(text, 0, noHolder, 0, !s.inPlain)
		return
	}
	if blank {
		return
	}
	if text[ind] == '#' {
		s.inPlain, s.literal = false, 0 // a comment line ends a plain scalar
		return
	}
	if ind == 0 && len(text) >= 3 && (string(text[:3]) == "---" || string(text[:3]) == "...") && indicator(text, 2) {
		// A new document (or the end of one): nothing is open any more.
		s.blocks, s.inPlain, s.literal, s.contHolder = s.blocks[:0], false, 0, noHolder
		s.inline(text, 3, noHolder, 3, true)
		return
	}
	if ind == 0 && text[0] == '%' {
		return // a directive
	}
	if s.inPlain && ind > s.contHolder {
		s.inline(text, ind, s.contHolder, ind, false) // the plain scalar goes on
		return
	}
	s.inPlain, s.literal = false, 0
	for n := len(s.blocks); n > 0 && (s.blocks[n-1].col > ind ||
		s.blocks[n-1].emptyItem && s.blocks[n-1].col == ind && text[ind] == '-' && indicator(text, ind)); n-- {
		s.blocks = s.blocks[:n-1]
	}
	holder := noHolder
	if len(s.blocks) > 0 {
		holder = s.blocks[len(s.blocks)-1].col
	}
	c, item := ind, false
	for c < len(text) && s.err == nil && (text[c] == '-' || text[c] == '?' || text[c] == ':') && indicator(text, c) {
		s.place(c, text[c] == '-')
		s.count(c)
		holder, item = c, true
		for c++; c < len(text) && space(text[c]); c++ {
		}
	}
	if item && (c == len(text) || text[c] == '#') {
		// An item with nothing after it on its line: goccy/go-yaml takes
		// the lines after it, even at its column, as inside it.
		s.blocks = append(s.blocks, level{col: holder, emptyItem: true})
		s.checkDepth(holder)
	}
	if c < len(text) && strings.IndexByte("#|>&!", text[c]) < 0 {
		s.place(c, false) // a key (or a scalar) at c
	}
	s.inline(text, c, holder, c, true)
}

// place puts a block collection starting at col on the stack: a list item
// at the column of a mapping's key is that key's value (a new level), at
// the column of a list it is the list's next item; a key at the column of
// a list that is a key's value ends the list.
func (s *scanner) place(col int, list bool) {
	n := len(s.blocks)
	if n > 0 && s.blocks[n-1].col == col && !s.blocks[n-1].emptyItem { // in an empty item, anything nests
		top := s.blocks[n-1]
		switch {
		case top.list == list:
			return
		case !list && n > 1 && s.blocks[n-2].col == col:
			s.blocks = s.blocks[:n-1]
			return
		case !list:
			return
		}
	}
	s.blocks = append(s.blocks, level{col: col, list: list})
	s.checkDepth(col)
}

// closeQuote finds the end of the quoted scalar (s.quote) from text[i];
// it returns the index after the closing quote, or len(text) with s.quote
// still set when the scalar goes on to the next line.
func (s *scanner) closeQuote(text []byte, i int) int {
	for ; i < len(text); i++ {
		switch {
		case s.quote == '\'' && text[i] == '\'':
			if i+1 < len(text) && text[i+1] == '\'' {
				i++ // '' is a quote inside
				continue
			}
			s.quote = 0
			return i + 1
		case s.quote == '"' && text[i] == '\\':
			i++ // an escaped character (or, at the end, a line break)
		case s.quote == '"' && text[i] == '"':
			s.quote = 0
			return i + 1
		}
	}
	return len(text)
}

// inline scans text from i to the end of the line; start: a node may
// begin at i. holder is the indentation of the block collection the
// line's nodes belong to: a block scalar's content and a plain scalar's
// continuation lines are indented more than it. nodeCol is where the last
// node in block context began: a key's column, which holds its value.
func (s *scanner) inline(text []byte, i, holder, nodeCol int, start bool) {
	spaced := i == 0 || space(text[i-1]) // # after whitespace begins a comment
	tagged := false                      // the line ends in a tag (and anchors)
	props := -1                          // where the anchor or tag before the next node began
	begin := func(i int) {               // a node begins at i: a key, in block context
		if s.flow == 0 {
			s.keyFlow = 0
			nodeCol = i
			if props >= 0 {
				nodeCol = props // yaml.v3 nests the lines after it as if the key began there
			}
		}
		props = -1
	}
	for i < len(text) && s.err == nil {
		ch := text[i]
		if space(ch) {
			spaced = true
			i++
			continue
		}
		if ch == '#' && spaced {
			s.inPlain, s.literal = false, 0
			break
		}
		spaced, tagged = false, tagged && (ch == '&' || ch == '!')
		if s.inPlain {
			switch {
			case ch == ':' && (indicator(text, i) || s.flow > 0 && i+1 < len(text) && flowIndicator(text[i+1])):
				s.inPlain, s.literal = false, 0 // it was a key; its value follows
			case s.flow > 0 && flowIndicator(ch):
				s.inPlain, s.literal = false, 0
				continue
			case ch == '[' || ch == '{':
				s.literal++
				s.checkDepth(i)
				i++
				continue
			case (ch == ']' || ch == '}') && s.literal > 0:
				s.literal--
				i++
				continue
			default:
				i++
				continue
			}
		}
		switch {
		case ch == '[' || ch == '{':
			begin(i)
			if len(s.kinds) == s.flow && s.flow <= MaxDepth {
				s.kinds = append(s.kinds, ch)
			}
			s.flow++
			s.count(i)
			s.checkDepth(i)
			start = true
			i++
		case ch == ']' || ch == '}':
			if s.flow > 0 {
				s.flow--
				s.kinds = s.kinds[:min(len(s.kinds), s.flow)]
			}
			start = false
			i++
		case ch == ',' && s.flow > 0:
			s.count(i)
			start = true
			i++
		case ch == ':' && (indicator(text, i) || s.flow > 0):
			// A value follows its key: in block context the key's mapping
			// holds what comes next.
			if s.flow == 0 {
				holder = nodeCol
				s.place(nodeCol, false) // the key's mapping, if its line did not begin it
				if s.keyFlow > 0 {      // the key was a flow collection, inside that mapping
					s.flow, s.keyFlow = s.keyFlow, 0
					s.checkDepth(i)
					s.flow, s.keyFlow = 0, 0
				}
			} else if n := len(s.kinds); n == s.flow && n > 0 && s.kinds[n-1] == '[' {
				// In a flow sequence "k: v" is a mapping of one pair, a
				// level of its own: "[a: b]" nests two deep.
				s.literal++
				s.checkDepth(i)
				s.literal--
			}
			s.count(i)
			start = true
			i++
		case (ch == '?' || ch == '-') && indicator(text, i) && start:
			// Not where YAML has them (those are at the line's start),
			// but a parser may take one for a collection: count it so.
			if s.flow == 0 {
				s.place(i, ch == '-')
			}
			s.count(i)
			i++
		case (ch == '\'' || ch == '"') && start:
			begin(i)
			s.count(i)
			s.quote = ch
			s.quoteAt.holder, s.quoteAt.node = holder, nodeCol
			i = s.closeQuote(text, i+1)
			start = false
		case (ch == '|' || ch == '>') && start && s.flow == 0:
			s.count(i)
			s.blockScalar(text, i, holder)
			return
		case (ch == '&' || ch == '!') && start:
			if props < 0 {
				props = i
			}
			i = s.name(text, i, ch == '&') // an anchor or a tag: the node follows it
			tagged = tagged || ch == '!'
		case ch == '*' && start:
			begin(i)
			s.count(i)
			i = s.name(text, i, true)
			start = false
		default: // a plain scalar begins
			begin(i)
			s.count(i)
			s.inPlain, s.literal, start = true, 0, false
			i++
		}
	}
	if s.inPlain && s.flow == 0 {
		s.contHolder = holder
	}
	if tagged && s.flow == 0 && s.err == nil {
		// The node the tag is for begins on a later line. goccy/go-yaml
		// takes the lines after it, even at the same indentation, as
		// inside it ("a: !t\nb: !t\nc: 1" nests three deep there, yaml.v3
		// one): count a level that lines as far in keep open.
		s.blocks = append(s.blocks, level{col: max(holder, 0)})
		s.checkDepth(i)
	}
}

// name skips the anchor, alias or tag at text[i] and returns where it
// ends: at whitespace, a flow indicator in flow context, or (anchors and
// aliases) a ": ".
func (s *scanner) name(text []byte, i int, anchor bool) int {
	for i++; i < len(text) && !space(text[i]) && !(s.flow > 0 && flowIndicator(text[i])); i++ {
		if anchor && text[i] == ':' && indicator(text, i) {
			break
		}
	}
	return i
}

func flowIndicator(b byte) bool { return b == ',' || b == '[' || b == ']' || b == '{' || b == '}' }

// blockScalar starts skipping the content of the | or > scalar whose
// header is at text[i]: an indentation indicator digit fixes the content's
// indentation, relative to holder's; otherwise the first non-blank line
// sets it.
func (s *scanner) blockScalar(text []byte, i int, holder int) {
	s.block = blockScalar{on: true, holder: holder}
	for i++; i < len(text) && !space(text[i]); i++ {
		if d := text[i]; d >= '1' && d <= '9' {
			s.block.indent = max(holder, 0) + int(d-'0')
		}
	}
}
