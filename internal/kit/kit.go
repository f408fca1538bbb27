// Package kit holds the small things several siglipd packages share: the
// topic-safe form of a name (Slug), model ids, URL redaction, camera source
// kinds, TLS files, atomic file writes, the account of the state folder's
// writes (StateFiles) and one logger for failures that repeat.
//
// Contract: kit is a leaf. It imports nothing of siglipd, so any package may
// use it without pulling in the config loader, HTTP or a model; and it has
// no package-level state: every value it returns belongs to the caller
// (StateFiles and Repeat to the one that made them). Nothing in it blocks
// except WriteFile (on the disk) and TLSFiles.Load (reading its files).
package kit
