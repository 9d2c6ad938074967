package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrUnknownSchema reports data written under a schema this build does not
// know: a fingerprint of no embedded version, or a record name without a Go
// type.
var ErrUnknownSchema = errors.New("unknown schema")

// singleObjectMagic starts Avro single-object encoding.
var singleObjectMagic = [2]byte{0xC3, 0x01}

// check tells whether s is a version of r's schema.
func check(s *Schema, r Record) error {
	if s.Name != r.SchemaName() {
		return fmt.Errorf("encoding a %s record under schema %s", r.SchemaName(), s)
	}
	return nil
}

// AppendBinary appends r's Avro binary encoding under s, a version of r's
// schema. Fields s lacks are left out.
func AppendBinary(dst []byte, s *Schema, r Record) ([]byte, error) {
	if err := check(s, r); err != nil {
		return dst, err
	}
	out, err := s.Codec.BinaryFromNative(dst, r.native())
	if err != nil {
		return dst, fmt.Errorf("encoding %s: %w", s, err)
	}
	return out, nil
}

// AppendSingleObject appends r in Avro single-object encoding under s:
// 0xC3 0x01, s's fingerprint (8 bytes, little-endian), the binary body.
func AppendSingleObject(dst []byte, s *Schema, r Record) ([]byte, error) {
	if err := check(s, r); err != nil {
		return dst, err
	}
	n := len(dst)
	dst = append(dst, singleObjectMagic[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, s.Fingerprint())
	out, err := AppendBinary(dst, s, r)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

// IsSingleObject tells whether b starts like single-object encoding.
func IsSingleObject(b []byte) bool {
	return len(b) >= 2 && b[0] == singleObjectMagic[0] && b[1] == singleObjectMagic[1]
}

// DecodeSingleObject decodes a record in single-object encoding written
// under any embedded schema version, returning it with that version.
func DecodeSingleObject(b []byte) (Record, *Schema, error) {
	if !IsSingleObject(b) {
		return nil, nil, errors.New("not single-object encoded: no 0xC3 0x01 marker")
	}
	if len(b) < 10 {
		return nil, nil, errors.New("single-object header cut short")
	}
	fp := binary.LittleEndian.Uint64(b[2:10])
	s := ByFingerprint(fp)
	if s == nil {
		return nil, nil, fmt.Errorf("fingerprint %016x: %w (written by a newer cdcrecon? configure the schema registry)", fp, ErrUnknownSchema)
	}
	r, err := Decode(s, b[10:])
	return r, s, err
}

// Decode decodes an Avro binary body written under writer, embedded or
// parsed from a registry's text, into the Go type of its record name.
// Trailing bytes are an error.
func Decode(writer *Schema, body []byte) (Record, error) {
	r := newRecord(writer.FullName)
	if r == nil {
		return nil, fmt.Errorf("record %s: %w", writer.FullName, ErrUnknownSchema)
	}
	native, rest, err := writer.Codec.NativeFromBinary(body)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", writer.FullName, err)
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("decoding %s: %d bytes after the record", writer.FullName, len(rest))
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decoding %s: not a record", writer.FullName)
	}
	var ferr error
	r.setNative(&nativeReader{m: m, err: &ferr})
	if ferr != nil {
		return nil, fmt.Errorf("decoding %s: %w", writer.FullName, ferr)
	}
	return r, nil
}
