// Package consistency decides drift: the consistency rule of docs/DESIGN.md
// ("Reference semantics"), applied per key to the deduplicated changes of
// one changes-topic partition, with each side's watermark saying how far
// in event time its changes are complete.
//
// An Engine owns one partition's keys. Apply hands it a change; Watermark
// says an input partition of a side has reached an event time; Advance
// decides every instant both sides have completed; Finish is the end of
// input (time +∞). Decisions come out, through Config.Emit, as drift,
// compensation and checksum records, and never depend on when Advance ran:
// watermarks decide when a record is emitted, never what it says.
//
// The rule, per key. Each side's state S(t) is its row after applying, in
// order of (event time, input topic, partition, offset), its changes with
// time ≤ t; absent before the first. A source state that held on [s, e)
// is acceptable for the target on [s, e + grace). The key is consistent
// at t when the target's state equals a state acceptable at t; a drift is
// a maximal interval of inconsistency, opened at its first inconsistent
// instant and resolved at the first consistent one after. Its kind,
// columns and rows are those of the opening instant, compared with the
// source's state then. Event times are Unix milliseconds, already made
// non-decreasing within each input partition by the stage that feeds the
// engine.
//
// Keyed state. With a Store (Config.Store, the Pebble state), an engine
// keeps in memory the keys it is working on and, up to Config.MaxKeys,
// idle ones; Flush moves the idle keys beyond that into a batch the caller
// commits, and a key comes back on its next change (spill.go). Which keys
// are in memory never changes a decision.
package consistency
