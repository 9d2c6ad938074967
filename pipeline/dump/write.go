package dump

import (
	"strconv"
)

// AppendLine appends rec as one kcat -J line, newline included. Strings are
// written as kcat writes them: bytes verbatim, with only quotes, backslashes
// and control characters escaped.
func AppendLine(b []byte, rec Record) []byte {
	b = append(b, `{"topic":`...)
	b = appendString(b, []byte(rec.Topic))
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(rec.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, rec.Offset, 10)
	if rec.LogAppendTime {
		b = append(b, `,"tstype":"logappend"`...)
	} else {
		b = append(b, `,"tstype":"create"`...)
	}
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, rec.Timestamp.UnixMilli(), 10)
	if len(rec.Headers) > 0 {
		b = append(b, `,"headers":[`...)
		for i, h := range rec.Headers {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, []byte(h.Key))
			b = append(b, ',')
			b = appendNullable(b, h.Value)
		}
		b = append(b, ']')
	}
	b = append(b, `,"key":`...)
	b = appendNullable(b, rec.Key)
	b = append(b, `,"payload":`...)
	b = appendNullable(b, rec.Value)
	return append(b, "}\n"...)
}

func appendNullable(b, s []byte) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

const hexDigits = "0123456789abcdef"

func appendString(b, s []byte) []byte {
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
