package debezium

import (
	"encoding/binary"
	"fmt"
	mathbits "math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner reads one JSON text in a single pass, strictly by RFC 8259,
// without building a tree: the decoder turns each value into its canonical
// form as it is read. fastjson, which builds a tree and is used for the
// cold paths, costs more than all the conversions of an event together;
// FuzzJSONDecoder checks this scanner against encoding/json.
type scanner struct {
	b   []byte
	i   int
	err error
}

// Token kinds, as told by the first byte of a value.
type tok uint8

const (
	kEnd tok = iota
	kObject
	kArray
	kString
	kNumber
	kTrue
	kFalse
	kNull
	kBad
)

func (s *scanner) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("at byte %d: %s", s.i, fmt.Sprintf(format, args...))
	}
	s.i = len(s.b) // stop everything that follows
}

func (s *scanner) ws() {
	i, b := s.i, s.b
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	s.i = i
}

// plain marks the bytes a string holds without special meaning: not a
// quote, not a backslash, not a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// peek skips white space and tells the kind of the next value.
func (s *scanner) peek() tok {
	s.ws()
	if s.i >= len(s.b) {
		return kEnd
	}
	return toks[s.b[s.i]]
}

// toks tells the kind of a value by its first byte.
var toks = func() (t [256]tok) {
	for c := range t {
		t[c] = kBad
	}
	t['{'], t['['], t['"'], t['-'] = kObject, kArray, kString, kNumber
	for c := '0'; c <= '9'; c++ {
		t[c] = kNumber
	}
	t['t'], t['f'], t['n'] = kTrue, kFalse, kNull
	return t
}()

// literal consumes true, false or null.
func (s *scanner) literal(word string) {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		s.fail("invalid literal")
		return
	}
	s.i += len(word)
}

// str consumes a string and returns its raw contents (between the quotes)
// and whether they hold escapes.
func (s *scanner) str() (raw []byte, escaped bool) {
	b := s.b
	start := s.i + 1 // past the opening quote
	i := start
	for {
		// Eight bytes at a time while none of them is special: most text
		// is long runs of plain bytes.
		for i <= len(b)-8 {
			m := specialBytes(binary.LittleEndian.Uint64(b[i : i+8 : i+8]))
			if m != 0 {
				i += mathbits.TrailingZeros64(m) >> 3
				goto special
			}
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			s.i = i
			s.fail("unterminated string")
			return nil, false
		}
	special:
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], escaped
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				s.i = i
				s.fail("unterminated escape")
				return nil, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					s.i = i
					s.fail("bad \\u escape")
					return nil, false
				}
				i += 6
			default:
				s.i = i
				s.fail("bad escape \\%c", b[i+1])
				return nil, false
			}
		default:
			s.i = i
			s.fail("control character in string")
			return nil, false
		}
	}
}

// specialBytes marks, with the high bit of its byte, each byte of x that
// is a quote, a backslash or a control character. Bytes above the first
// marked one may be marked falsely (borrows propagate upwards), so only
// the lowest mark is exact.
func specialBytes(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := x ^ (ones * '"')
	slash := x ^ (ones * '\\')
	return ((quote-ones)&^quote | (slash-ones)&^slash | (x-ones*0x20)&^x) & highs
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// integer consumes a number and returns its token and, when it is an
// integer of at most 18 digits, its value.
func (s *scanner) integer() (raw []byte, n int64, isInt bool) {
	b, i := s.b, s.i
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	start := i
	for i < len(b) && b[i]-'0' <= 9 && i-start < 18 {
		n = n*10 + int64(b[i]-'0')
		i++
	}
	if d := i - start; d > 0 && (d == 1 || b[start] != '0') && (i >= len(b) || !numberByte[b[i]]) {
		if neg {
			n = -n
		}
		raw = b[s.i:i]
		s.i = i
		return raw, n, true
	}
	return s.number(), 0, false
}

// numberByte marks the bytes that can continue a number.
var numberByte = func() (t [256]bool) {
	for _, c := range []byte("0123456789.eE+-") {
		t[c] = true
	}
	return t
}()

// number consumes a number and returns its token.
func (s *scanner) number() []byte {
	start := s.i
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		s.fail("bad number")
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			s.fail("bad number")
			return nil
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			s.fail("bad number")
			return nil
		}
	}
	return s.b[start:s.i]
}

func (s *scanner) digits() int {
	i, b := s.i, s.b
	start := i
	for i < len(b) && b[i]-'0' <= 9 {
		i++
	}
	s.i = i
	return i - start
}

// skip consumes any value, validating it.
func (s *scanner) skip(depth int) {
	if depth > maxDepth {
		s.fail("nested too deeply")
		return
	}
	switch s.peek() {
	case kObject:
		for first := true; ; first = false {
			if _, _, ok := s.key(first); !ok {
				return
			}
			s.skip(depth + 1)
		}
	case kArray:
		for first := true; s.elem(first); first = false {
			s.skip(depth + 1)
		}
	case kString:
		s.str()
	case kNumber:
		s.number()
	case kTrue:
		s.literal("true")
	case kFalse:
		s.literal("false")
	case kNull:
		s.literal("null")
	default:
		s.fail("value expected")
	}
}

// key reads the next key of an object: the opening brace first (first
// true), else a comma; then the key and its colon. ok is false at the
// closing brace, which it consumes, and on error.
func (s *scanner) key(first bool) (raw []byte, escaped, ok bool) {
	if !s.member(first) {
		return nil, false, false
	}
	raw, escaped = s.str()
	return raw, escaped, s.colon()
}

// member moves to the next key of an object: past the opening brace
// (first true), else past a comma, to the key's opening quote. It is false
// at the closing brace, which it consumes, and on error.
func (s *scanner) member(first bool) bool {
	s.ws()
	if first {
		if s.i >= len(s.b) || s.b[s.i] != '{' {
			s.fail("object expected")
			return false
		}
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == '}' {
			s.i++
			return false
		}
	} else {
		if s.i < len(s.b) && s.b[s.i] == '}' {
			s.i++
			return false
		}
		if s.i >= len(s.b) || s.b[s.i] != ',' {
			s.fail("',' or '}' expected")
			return false
		}
		s.i++
		s.ws()
	}
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		s.fail("key expected")
		return false
	}
	return true
}

// colon consumes the colon after a key.
func (s *scanner) colon() bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		s.fail("':' expected")
		return false
	}
	s.i++
	return s.err == nil
}

// keyOrder remembers the keys of the last object read at one place of a
// message (the payload, the source block, a row image), so that the next
// message's object, whose keys almost always come in the same order, costs
// a comparison per key instead of a scan.
type keyOrder struct {
	keys []remembered
	n    int // the keys of the current object so far
}

type remembered struct {
	// b is the key as the message wrote it: the opening brace or comma
	// before it, the key in its quotes and the colon, when no white space
	// comes between them.
	b []byte
	// w holds b's first 16 bytes as two little-endian words, m the masks
	// of the bytes b has among them: most keys compare in two loads.
	w, m [2]uint64
}

func newRemembered(b []byte) remembered {
	r := remembered{b: b}
	var pad [16]byte
	copy(pad[:], b)
	for i := range r.w {
		r.w[i] = binary.LittleEndian.Uint64(pad[8*i:])
		if n := len(b) - 8*i; n >= 8 {
			r.m[i] = ^uint64(0)
		} else if n > 0 {
			r.m[i] = 1<<(8*n) - 1
		}
	}
	return r
}

// at reports whether b starts with the remembered key.
func (r *remembered) at(b []byte) bool {
	if len(b) < 16 || len(r.b) > 16 {
		return len(b) >= len(r.b) && string(b[:len(r.b)]) == string(r.b)
	}
	return binary.LittleEndian.Uint64(b)&r.m[0] == r.w[0] && binary.LittleEndian.Uint64(b[8:])&r.m[1] == r.w[1]
}

// maxKeyOrder bounds the keys a keyOrder remembers.
const maxKeyOrder = 256

// keyIn reads the next key like key, first comparing it with the key ko
// remembers at this position.
func (s *scanner) keyIn(ko *keyOrder, first bool) (raw []byte, escaped, ok bool) {
	if first {
		ko.n = 0
	}
	n := ko.n
	ko.n++
	if n < len(ko.keys) {
		// A remembered key holds no quote or backslash but its own quotes,
		// so bytes equal to it are the same key, a complete JSON string.
		if r := &ko.keys[n]; r.at(s.b[s.i:]) {
			raw = s.b[s.i+2 : s.i+len(r.b)-2]
			s.i += len(r.b)
			return raw, false, true
		}
	}
	at := s.i
	if !s.member(first) {
		return nil, false, false
	}
	start := s.i
	raw, escaped = s.str()
	ok = s.colon()
	if ok && !escaped && start == at+1 && s.i == start+len(raw)+3 && n <= len(ko.keys) && n < maxKeyOrder {
		ko.keys = append(ko.keys[:n], newRemembered(append([]byte(nil), s.b[at:s.i]...)))
	}
	return raw, escaped, ok
}

// elem moves to the next element of an array: past the opening bracket
// (first true), else past a comma. It is false at the closing bracket,
// which it consumes, and on error.
func (s *scanner) elem(first bool) bool {
	s.ws()
	if first {
		if s.i >= len(s.b) || s.b[s.i] != '[' {
			s.fail("array expected")
			return false
		}
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return false
		}
		return true
	}
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return false
	}
	if s.i >= len(s.b) || s.b[s.i] != ',' {
		s.fail("',' or ']' expected")
		return false
	}
	s.i++
	return true
}

// end checks that only white space follows.
func (s *scanner) end() {
	s.ws()
	if s.i < len(s.b) && s.err == nil {
		s.fail("unexpected data after the JSON value")
	}
}

// appendUnescaped appends the unescaped contents of a string that str
// validated. Invalid surrogates become U+FFFD, as encoding/json does.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2 := utf16.DecodeRune(r, hex4(raw[i+2:i+6])); r2 != utf8.RuneError {
						dst = utf8.AppendRune(dst, r2)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // " \ /
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
