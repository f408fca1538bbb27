// Package kit holds the small things several siglipd packages share: the
// topic-safe form of a name (Slug), model ids, URL redaction, camera source
// kinds, TLS files, atomic file writes, one logger for failures that
// repeat, and the account of the state folder's writes (StateFiles).
//
// Contract: kit is a leaf. It imports nothing of siglipd, so any package may
// use it without pulling in the config loader, HTTP or a model; and it holds
// no state of its own: every value it returns belongs to the caller.
// Nothing in it blocks except WriteFile (on the disk) and TLSFiles.Load
// (reading its files).
package kit
