package infer

import (
	"fmt"
	"math"
	"slices"
)

// Classifier scores camera frames against text labels.
//
// Contract: EmbedLabels runs the text tower once per distinct prompt (at
// start and on reload) and returns an immutable LabelSet. Classify runs the
// vision tower once for the whole batch — frames from different cameras,
// each with its own LabelSet — and returns, for frame i and label j of
// sets[i], the independent probability that the label describes the frame.
// Implementations are safe for concurrent use; batches run one at a time.
type Classifier interface {
	EmbedLabels(labels []Label) (*LabelSet, error)
	Classify(images []Image, sets []*LabelSet) ([][]float32, error)
	// EmbedImages returns the unit-length image embeddings of a batch.
	EmbedImages(images []Image) ([][]float32, error)
	// Score turns one embedding from EmbedImages into the probabilities of
	// a set's labels: Classify is EmbedImages, then Score per image.
	Score(imageEmb []float32, set *LabelSet) []float32
	Info() Info
	Close() error
}

var _ Classifier = (*Model)(nil)

// Embedding is the unit text embedding of label i (its prompts' mean):
// what a search scores stored frames' embeddings against; nil when the set
// has none (a set made by hand, in tests).
func (s *LabelSet) Embedding(i int) []float32 {
	if i < 0 || i >= len(s.emb) {
		return nil
	}
	return slices.Clone(s.emb[i])
}

// Label is a name and the prompts that describe it.
type Label struct {
	Name    string
	Prompts []string
}

// LabelSet is a list of labels with their text embeddings, ready to score.
type LabelSet struct {
	Names []string
	emb   [][]float32 // unit vectors
}

// textBatch is how many prompts one text-tower run takes. Labels are
// embedded at start and on reload only, so this only bounds memory.
const textBatch = 16

// EmbedLabels embeds every label: each prompt (filled into the template)
// through the text tower, each embedding normalized, the label's prompts
// averaged and normalized again. Prompts embedded before (an earlier call,
// another camera) are not run again.
func (m *Model) EmbedLabels(labels []Label) (*LabelSet, error) {
	var todo []string
	got := map[string][]float32{} // this call's, whatever the cache drops meanwhile
	for _, l := range labels {
		if len(l.Prompts) == 0 {
			return nil, fmt.Errorf("label %q has no prompts", l.Name)
		}
		for _, p := range l.Prompts {
			if _, done := got[p]; done {
				continue
			}
			e, ok := m.textCache.get(p)
			got[p] = e
			if !ok {
				todo = append(todo, p)
			}
		}
	}
	for start := 0; start < len(todo); start += textBatch {
		chunk := todo[start:min(start+textBatch, len(todo))]
		emb, err := m.EmbedTexts(chunk)
		if err != nil {
			return nil, err
		}
		for i, p := range chunk {
			m.textCache.put(p, emb[i])
			got[p] = emb[i]
		}
	}
	set := &LabelSet{}
	for _, l := range labels {
		var mean []float32
		for _, p := range l.Prompts {
			e := got[p]
			if mean == nil {
				mean = make([]float32, len(e))
			}
			for i, v := range e {
				mean[i] += v
			}
		}
		set.Names = append(set.Names, l.Name)
		set.emb = append(set.emb, normalize(mean))
	}
	return set, nil
}

// EmbedTexts runs the text tower on prompts (template applied) and returns
// unit-length embeddings.
func (m *Model) EmbedTexts(prompts []string) ([][]float32, error) {
	t := m.text
	t.mu.Lock()
	defer t.mu.Unlock()
	n, length := len(prompts), m.tok.MaxLength
	in, err := t.batch(n, int64(length))
	if err != nil {
		return nil, err
	}
	for i, p := range prompts {
		ids := m.TokenIDs(p)
		if in.i64 != nil {
			copy(in.i64[i*length:(i+1)*length], ids)
		} else {
			for j, id := range ids {
				in.i32[i*length+j] = int32(id)
			}
		}
	}
	return t.runNormalized(in, n)
}

// EmbedImages preprocesses the images into one batch, runs the vision tower
// once and returns unit-length embeddings.
func (m *Model) EmbedImages(images []Image) ([][]float32, error) {
	if len(images) == 0 {
		return nil, nil
	}
	t := m.vision
	t.mu.Lock()
	defer t.mu.Unlock()
	n, plane := len(images), m.pre.PlaneSize()
	in, err := t.batch(n, 0)
	if err != nil {
		return nil, err
	}
	for i, img := range images {
		if err := m.pre.Process(img, in.f32[i*plane:(i+1)*plane]); err != nil {
			return nil, fmt.Errorf("image %d of the batch: %w", i, err)
		}
	}
	return t.runNormalized(in, n)
}

// Classify embeds the batch and scores image i against sets[i].
func (m *Model) Classify(images []Image, sets []*LabelSet) ([][]float32, error) {
	if len(images) != len(sets) {
		return nil, fmt.Errorf("classify: %d images but %d label sets", len(images), len(sets))
	}
	emb, err := m.EmbedImages(images)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(images))
	for i, e := range emb {
		out[i] = m.Score(e, sets[i])
	}
	return out, nil
}

// Score turns one image embedding into each label's probability:
// sigmoid(exp(logit_scale)·cos + logit_bias), every label on its own.
func (m *Model) Score(imageEmb []float32, set *LabelSet) []float32 {
	probs := make([]float32, len(set.emb))
	for j, t := range set.emb {
		var cos float64
		for k, v := range t {
			cos += float64(v) * float64(imageEmb[k])
		}
		probs[j] = float32(sigmoid(m.logitScale*cos + m.logitBias))
	}
	return probs
}

// runNormalized runs the tower on a filled batch and returns unit-length
// embeddings.
func (t *tower) runNormalized(in *batchInput, n int) ([][]float32, error) {
	rows, err := t.run(in, n)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		rows[i] = normalize(rows[i])
	}
	return rows, nil
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// normalize scales v to unit length (in place) and returns it.
func normalize(v []float32) []float32 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		return v
	}
	inv := 1 / math.Sqrt(ss)
	for i := range v {
		v[i] = float32(float64(v[i]) * inv)
	}
	return v
}
