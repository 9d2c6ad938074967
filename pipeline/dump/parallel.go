package dump

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Parallel parsing: a reader goroutine cuts the input into chunks of lines,
// workers parse chunks, and Next hands out their records in input order.
// Loading a large dump is bound by parsing (every payload is an escaped
// JSON string to copy out); this spreads it over the machine's cores.

const (
	chunkLines = 1024
	chunkBytes = 4 << 20
)

type chunk struct {
	buf   []byte
	lines [][]byte
	nums  []int // line number of each line
	recs  []Record
	errs  []error
	done  chan struct{}
	// end, on the last chunk, is what follows its lines: io.EOF or the
	// read error.
	end error
}

type parallel struct {
	order chan *chunk
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup // the reader and the workers
	cur   *chunk
	i     int
	line  int
}

// NewParallelReader reads the dump r like NewReader, parsing lines on
// workers goroutines; records come out in input order. Close it when
// stopping before the end.
func NewParallelReader(r io.Reader, name string, workers int) *Reader {
	workers = max(workers, 1)
	p := &parallel{order: make(chan *chunk, 2*workers), stop: make(chan struct{})}
	work := make(chan *chunk, 2*workers)
	p.wg.Add(workers + 1)
	for range workers {
		go func() {
			defer p.wg.Done()
			for c := range work {
				c.recs = make([]Record, len(c.lines))
				c.errs = make([]error, len(c.lines))
				for i, l := range c.lines {
					rec, err := ParseLine(l)
					if err != nil {
						c.errs[i] = &LineError{File: name, Line: c.nums[i], Err: err}
					}
					c.recs[i] = rec
				}
				close(c.done)
			}
		}()
	}
	go func() {
		defer p.wg.Done()
		defer close(work)
		defer close(p.order)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), maxLine)
		line := 0
		c := &chunk{done: make(chan struct{})}
		send := func() bool {
			select {
			case p.order <- c:
			case <-p.stop:
				return false
			}
			if c.end == nil {
				select {
				case work <- c:
				case <-p.stop:
					return false
				}
			}
			return true
		}
		for sc.Scan() {
			line++
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			// Lines point into c.buf; when it grows, earlier ones keep
			// the old array, which is never written again.
			start := len(c.buf)
			c.buf = append(c.buf, b...)
			c.lines = append(c.lines, c.buf[start:len(c.buf):len(c.buf)])
			c.nums = append(c.nums, line)
			if len(c.lines) == chunkLines || len(c.buf) >= chunkBytes {
				if !send() {
					return
				}
				c = &chunk{done: make(chan struct{})}
			}
		}
		if len(c.lines) > 0 {
			if !send() {
				return
			}
		}
		end := &chunk{done: make(chan struct{}), end: io.EOF}
		close(end.done)
		if err := sc.Err(); err != nil {
			end.end = fmt.Errorf("reading %s: %w", name, err)
			if errors.Is(err, bufio.ErrTooLong) {
				end.end = &LineError{File: name, Line: line + 1, Err: fmt.Errorf("line longer than %d bytes", maxLine)}
			}
		}
		c = end
		send()
	}()
	return &Reader{name: name, par: p}
}

func (p *parallel) next() (Record, error) {
	for p.cur == nil || p.i == len(p.cur.lines) {
		if p.cur != nil && p.cur.end != nil {
			return Record{}, p.cur.end
		}
		c, ok := <-p.order
		if !ok {
			return Record{}, io.EOF
		}
		<-c.done
		p.cur, p.i = c, 0
	}
	i := p.i
	p.i++
	p.line = p.cur.nums[i]
	if err := p.cur.errs[i]; err != nil {
		return Record{}, err
	}
	return p.cur.recs[i], nil
}

// Close stops a parallel reader's goroutines and waits for them; it is
// safe to call more than once, and does nothing for a plain Reader.
func (r *Reader) Close() {
	if r.par != nil {
		r.par.once.Do(func() { close(r.par.stop) })
		r.par.wg.Wait()
	}
}
