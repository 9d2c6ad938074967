// Package canon defines cdcrecon's canonical values and rows: the typed,
// normalised form in which both sides of a table are compared, with a
// stable binary encoding, xxh3 digests of values and rows, and a JSON
// display form.
//
// Two values are the same exactly when their encodings are equal, so a
// digest comparison is a value comparison. Every numeric type is a Number
// compared by numeric value; every date and timestamp an Instant in UTC;
// every time of day a Duration.
package canon
