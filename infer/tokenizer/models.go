package tokenizer

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ---- Metaspace pre-tokenizer ----

type metaspace struct {
	replacement string
	prepend     string // "always", "first" or "never"
	splitWords  bool
}

func parsePreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var spec struct {
		Type           string            `json:"type"`
		Replacement    string            `json:"replacement"`
		PrependScheme  *string           `json:"prepend_scheme"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
		Split          *bool             `json:"split"`
		PreTokenizers  []json.RawMessage `json:"pretokenizers"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, err
	}
	switch spec.Type {
	case "Metaspace":
		m := metaspace{replacement: spec.Replacement, prepend: "always", splitWords: true}
		if m.replacement == "" {
			m.replacement = "▁"
		}
		switch {
		case spec.PrependScheme != nil:
			m.prepend = *spec.PrependScheme
		case spec.AddPrefixSpace != nil && !*spec.AddPrefixSpace:
			m.prepend = "never" // tokenizers < 0.14 wrote only add_prefix_space
		}
		if spec.Split != nil {
			m.splitWords = *spec.Split
		}
		if m.prepend != "always" && m.prepend != "first" && m.prepend != "never" {
			return nil, fmt.Errorf("Metaspace prepend_scheme %q is not supported", m.prepend)
		}
		return m, nil
	case "Split":
		return parseSplit(raw)
	case "Sequence":
		var seq sequencePreTokenizer
		for i, r := range spec.PreTokenizers {
			p, err := parsePreTokenizer(r)
			if err != nil {
				return nil, fmt.Errorf("pretokenizers[%d]: %w", i, err)
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	}
	return nil, fmt.Errorf("type %q is not supported (want Metaspace, Split or Sequence)", spec.Type)
}

// split replaces spaces with "▁", prepends one, and (split: true) cuts
// before each "▁" so every word starts with one.
func (m metaspace) split(text string, first bool) []string {
	s := strings.ReplaceAll(text, " ", m.replacement)
	if s != "" && !strings.HasPrefix(s, m.replacement) && (m.prepend == "always" || (m.prepend == "first" && first)) {
		s = m.replacement + s
	}
	if !m.splitWords {
		return []string{s}
	}
	// Cut before every "▁" but one at the very start (tokenizers'
	// MergedWithNext): "▁a▁▁b" → "▁a", "▁", "▁b".
	var words []string
	start := 0
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], m.replacement)
		if j < 0 {
			break
		}
		if pos := i + j; pos > start {
			words = append(words, s[start:pos])
			start = pos
		}
		i += j + len(m.replacement)
	}
	return append(words, s[start:])
}

type sequencePreTokenizer []preTokenizer

func (s sequencePreTokenizer) split(text string, first bool) []string {
	words := []string{text}
	for _, p := range s {
		var next []string
		for _, w := range words {
			next = append(next, p.split(w, first)...)
		}
		words = next
	}
	return words
}

// ---- Unigram ----

// unkPenalty is SentencePiece's kUnkPenalty: an unknown character scores
// this much below the least likely piece.
const unkPenalty = 10.0

type unigram struct {
	ids          map[string]int
	scores       []float64
	unkID        int
	unkScore     float64
	byteFallback bool
	maxPieceLen  int // in bytes
}

func parseUnigram(raw json.RawMessage) (model, map[string]int, error) {
	var spec struct {
		UnkID        *int                 `json:"unk_id"`
		Vocab        [][2]json.RawMessage `json:"vocab"`
		ByteFallback bool                 `json:"byte_fallback"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, nil, err
	}
	u := &unigram{ids: make(map[string]int, len(spec.Vocab)), scores: make([]float64, len(spec.Vocab)), byteFallback: spec.ByteFallback, unkID: -1}
	minScore := 0.0
	for i, v := range spec.Vocab {
		var piece string
		if err := json.Unmarshal(v[0], &piece); err != nil {
			return nil, nil, fmt.Errorf("vocab[%d]: %w", i, err)
		}
		if err := json.Unmarshal(v[1], &u.scores[i]); err != nil {
			return nil, nil, fmt.Errorf("vocab[%d] score: %w", i, err)
		}
		// A piece listed twice maps to its last id, as in tokenizers (its
		// HashMap is built in vocab order) and transformers.js.
		u.ids[piece] = i
		u.maxPieceLen = max(u.maxPieceLen, len(piece))
		minScore = min(minScore, u.scores[i])
	}
	if spec.UnkID != nil {
		u.unkID = *spec.UnkID
	}
	u.unkScore = minScore - unkPenalty
	vocab := make(map[string]int, len(u.ids))
	for k, v := range u.ids {
		vocab[k] = v
	}
	return u, vocab, nil
}

// encode is tokenizers' Unigram::encode_optimized (SentencePiece's Viterbi):
// best[i] is the best segmentation of s[:i]; a piece replaces a node only
// when strictly better, so among equal scores the first found (shortest
// piece, earliest start) wins. Unknown characters score unkScore and
// consecutive unknowns fuse into one token.
func (u *unigram) encode(s string) []int {
	type node struct {
		id      int
		score   float64
		startAt int // -1: unreached
	}
	best := make([]node, len(s)+1)
	for i := range best {
		best[i].startAt = -1
	}
	for start := 0; start < len(s); {
		_, charLen := utf8.DecodeRuneInString(s[start:])
		base := best[start].score
		hasSingle := false
		// Every vocab piece that is a prefix of s[start:], shortest first.
		for end := start + 1; end <= len(s) && end-start <= u.maxPieceLen; end++ {
			if end < len(s) && !utf8.RuneStart(s[end]) {
				continue // not at a character boundary
			}
			id, ok := u.ids[s[start:end]]
			if !ok {
				continue
			}
			cand := base + u.scores[id]
			if best[end].startAt < 0 || cand > best[end].score {
				best[end] = node{id: id, score: cand, startAt: start}
			}
			if end-start == charLen {
				hasSingle = true
			}
		}
		if !hasSingle {
			end := start + charLen
			cand := base + u.unkScore
			if best[end].startAt < 0 || cand > best[end].score {
				best[end] = node{id: u.unkID, score: cand, startAt: start}
			}
		}
		start += charLen
	}
	// Backtrack, fusing runs of unknown characters into one piece.
	var pieces []string
	var pieceIDs []int
	for end := len(s); end > 0; {
		n := best[end]
		if n.id == u.unkID && len(pieceIDs) > 0 && pieceIDs[len(pieceIDs)-1] == u.unkID {
			pieces[len(pieces)-1] = s[n.startAt:end] + pieces[len(pieces)-1]
		} else {
			pieces = append(pieces, s[n.startAt:end])
			pieceIDs = append(pieceIDs, n.id)
		}
		end = n.startAt
	}
	ids := make([]int, 0, len(pieces))
	for i := len(pieces) - 1; i >= 0; i-- {
		if pieceIDs[i] != u.unkID {
			ids = append(ids, pieceIDs[i])
			continue
		}
		ids = append(ids, u.unknown(pieces[i])...)
	}
	return ids
}

// unknown maps a piece outside the vocabulary to <0xXX> byte tokens when
// byte_fallback is on and all exist, else to the unknown token.
func (u *unigram) unknown(piece string) []int {
	if id, ok := u.ids[piece]; ok {
		return []int{id}
	}
	if u.byteFallback {
		if ids, ok := byteTokens(piece, u.ids); ok {
			return ids
		}
	}
	return []int{u.unkID}
}

func byteTokens(piece string, vocab map[string]int) ([]int, bool) {
	ids := make([]int, 0, len(piece))
	for i := 0; i < len(piece); i++ {
		id, ok := vocab[fmt.Sprintf("<0x%02X>", piece[i])]
		if !ok {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

// ---- BPE ----

type bpe struct {
	ids          map[string]int
	pieces       []string            // id → piece
	merges       map[uint64]bpeMerge // pairKey(left, right) → the merge
	unkID        int                 // -1 when there is no unknown token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
}

// bpeMerge is one merge rule: its rank (lower merges first) and the id of
// the piece it makes. Stored by pair in one map of small values, so
// Gemma's 580,604 merges stay compact.
type bpeMerge struct{ rank, id int32 }

func pairKey(l, r int) uint64 { return uint64(uint32(l))<<32 | uint64(uint32(r)) }

// parseBPE reads a BPE model object. The vocabulary and merges are read
// with jsonScanner (see there why); the other fields with encoding/json.
func parseBPE(raw json.RawMessage) (model, map[string]int, error) {
	b := &bpe{ids: map[string]int{}, merges: map[uint64]bpeMerge{}, unkID: -1}
	var unkToken, prefix, suffix *string
	var mergesAt = -1 // merges need the vocabulary: read them after it
	sc := &jsonScanner{b: raw}
	err := sc.object(func(key []byte) error {
		var dst any
		switch string(key) {
		case "vocab":
			return sc.object(func(k []byte) error {
				id, err := sc.integer()
				if err != nil {
					return fmt.Errorf("vocab %q: %w", k, err)
				}
				if id < 0 || id > 1<<30 {
					return fmt.Errorf("vocab %q: id %d out of range", k, id)
				}
				b.ids[string(k)] = id
				return nil
			})
		case "merges":
			mergesAt = sc.i
			_, err := sc.skip()
			return err
		case "unk_token":
			dst = &unkToken
		case "fuse_unk":
			dst = &b.fuseUnk
		case "byte_fallback":
			dst = &b.byteFallback
		case "ignore_merges":
			dst = &b.ignoreMerges
		case "continuing_subword_prefix":
			dst = &prefix
		case "end_of_word_suffix":
			dst = &suffix
		}
		v, err := sc.skip()
		if err != nil || dst == nil {
			return err
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if (prefix != nil && *prefix != "") || (suffix != nil && *suffix != "") {
		return nil, nil, fmt.Errorf("BPE with subword prefixes or word suffixes is not supported")
	}
	size := 0
	for _, id := range b.ids {
		size = max(size, id+1)
	}
	b.pieces = make([]string, size)
	for p, id := range b.ids {
		b.pieces[id] = p
	}
	if unkToken != nil {
		id, ok := b.ids[*unkToken]
		if !ok {
			return nil, nil, fmt.Errorf("unk_token %q is not in the vocabulary", *unkToken)
		}
		b.unkID = id
	}
	if mergesAt >= 0 {
		sc.i = mergesAt
		if err := b.readMerges(sc); err != nil {
			return nil, nil, err
		}
	}
	return b, b.ids, nil
}

// readMerges reads "merges", written by tokenizers either as "left right"
// strings (before 0.20) or as [left, right] pairs. A pair listed twice
// keeps its first (lowest) rank, as in tokenizers.
func (b *bpe) readMerges(sc *jsonScanner) error {
	var buf []byte
	return sc.array(func(rank int) error {
		var left, right int
		var err error
		buf = buf[:0]
		switch sc.peek() {
		case '"':
			if buf, err = sc.str(buf); err != nil {
				return fmt.Errorf("merges[%d]: %w", rank, err)
			}
			l, r, ok := bytes.Cut(buf, []byte(" "))
			if !ok {
				return fmt.Errorf("merges[%d] %q is not two pieces", rank, buf)
			}
			var lok, rok bool
			left, lok = b.ids[string(l)]
			right, rok = b.ids[string(r)]
			if !lok || !rok {
				return fmt.Errorf("merges[%d] %q: piece missing from the vocabulary", rank, buf)
			}
		case '[':
			n := 0
			err = sc.array(func(i int) error {
				if i > 1 {
					return fmt.Errorf("merges[%d] has more than two pieces", rank)
				}
				start := len(buf)
				if buf, err = sc.str(buf); err != nil {
					return fmt.Errorf("merges[%d]: %w", rank, err)
				}
				id, ok := b.ids[string(buf[start:])]
				if !ok {
					return fmt.Errorf("merges[%d]: piece %q missing from the vocabulary", rank, buf[start:])
				}
				if i == 0 {
					left = id
				} else {
					right = id
				}
				n++
				return nil
			})
			if err != nil {
				return err
			}
			if n != 2 {
				return fmt.Errorf("merges[%d] is not two pieces", rank)
			}
		default:
			return fmt.Errorf("merges[%d] is neither a string nor a pair", rank)
		}
		buf = append(append(buf[:0], b.pieces[left]...), b.pieces[right]...)
		out, ok := b.ids[string(buf)]
		if !ok {
			return fmt.Errorf("merges[%d] %q %q: the merged piece is missing from the vocabulary", rank, b.pieces[left], b.pieces[right])
		}
		if rank > 1<<30 {
			return fmt.Errorf("merges: more than %d", 1<<30)
		}
		if _, dup := b.merges[pairKey(left, right)]; !dup {
			b.merges[pairKey(left, right)] = bpeMerge{rank: int32(rank), id: int32(out)}
		}
		return nil
	})
}

// encode is tokenizers' BPE::merge_word: characters become symbols (with
// byte fallback or the unknown token for characters outside the
// vocabulary), then the lowest-ranked adjacent pair is merged, leftmost
// first among equal ranks, until no known merge remains.
func (b *bpe) encode(word string) []int {
	if b.ignoreMerges {
		if id, ok := b.ids[word]; ok {
			return []int{id}
		}
	}
	var syms []int
	lastUnk := false
	for _, r := range word {
		c := string(r)
		if id, ok := b.ids[c]; ok {
			syms = append(syms, id)
			lastUnk = false
			continue
		}
		if b.byteFallback {
			if ids, ok := byteTokens(c, b.ids); ok {
				syms = append(syms, ids...)
				lastUnk = false
				continue
			}
		}
		if b.unkID < 0 {
			continue // no unknown token: the character is dropped, as in tokenizers
		}
		if b.fuseUnk && lastUnk {
			continue
		}
		syms = append(syms, b.unkID)
		lastUnk = true
	}
	return b.merge(syms)
}

type mergeCand struct{ rank, pos int }
type mergeHeap []mergeCand

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeCand)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge applies merges over a linked list of symbols with a priority queue
// of candidate pairs; a popped pair that no longer exists is skipped.
func (b *bpe) merge(ids []int) []int {
	n := len(ids)
	if n < 2 {
		return ids
	}
	next := make([]int, n)
	prev := make([]int, n)
	alive := make([]bool, n)
	for i := range ids {
		next[i], prev[i], alive[i] = i+1, i-1, true
	}
	next[n-1] = -1
	h := &mergeHeap{}
	push := func(i int) {
		if i < 0 || next[i] < 0 {
			return
		}
		if m, ok := b.merges[pairKey(ids[i], ids[next[i]])]; ok {
			heap.Push(h, mergeCand{int(m.rank), i})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	for h.Len() > 0 {
		c := heap.Pop(h).(mergeCand)
		i := c.pos
		if !alive[i] || next[i] < 0 {
			continue
		}
		j := next[i]
		m, ok := b.merges[pairKey(ids[i], ids[j])]
		if !ok || int(m.rank) != c.rank {
			continue // the pair changed since it was queued
		}
		ids[i] = int(m.id)
		alive[j] = false
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		push(prev[i])
		push(i)
	}
	out := make([]int, 0, n)
	for i := 0; i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}
