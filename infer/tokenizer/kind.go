package tokenizer

// Kind is the tokenizer.json model type: "Unigram" (SigLIP's T5-style
// SentencePiece) or "BPE" (SigLIP 2's Gemma tokenizer). It tells the two
// SigLIP generations apart, which share config.json's model_type.
func (t *Tokenizer) Kind() string {
	switch t.model.(type) {
	case *unigram:
		return "Unigram"
	case *bpe:
		return "BPE"
	}
	return ""
}
