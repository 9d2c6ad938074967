package state

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestFullDiskStops: a disk that fills up makes the store refuse commits
// with ErrStorage, naming the directory and the free space, before Pebble
// meets ENOSPC where it cannot return it (rotating its log, it panics and
// the process dies on a lock). Here the disk reports 10 MiB free and
// every write fails with ENOSPC at once: the next commit must be refused,
// and so must Check, which the worker calls every tick. Before the
// reserve, the commit crashed the test binary.
func TestFullDiskStops(t *testing.T) {
	mem := vfs.NewMem()
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 10 << 30, TotalBytes: 20 << 30, UsedBytes: 10 << 30})
	full := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return fmt.Errorf("%s: %w", op.Path, syscall.ENOSPC)
		}
		return nil
	})}
	s, err := Open("state", Options{FS: errorfs.Wrap(mem, full), OnFatal: func(f *Failure) {
		t.Errorf("OnFatal: %v", f)
		select {} // must not return
	}})
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 64<<10)
	commit := func(i int) error {
		b := s.NewBatch()
		defer b.Close()
		b.Set(fmt.Appendf(nil, "k%08d", i), value)
		return b.Commit()
	}
	for i := range 100 {
		if err := commit(i); err != nil {
			t.Fatalf("commit %d before the disk is full: %v", i, err)
		}
	}
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 10 << 20, TotalBytes: 20 << 30, UsedBytes: 20<<30 - 10<<20})
	full.On()
	for i := 100; i < 1100; i++ {
		err := commit(i)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), "10 MiB free") || !strings.Contains(err.Error(), "state") {
			t.Fatalf("commit on a full disk: %v; want ErrStorage naming the directory and the free space", err)
		}
		if cerr := s.Check(); !errors.Is(cerr, ErrStorage) {
			t.Errorf("Check on a full disk: %v, want ErrStorage", cerr)
		}
		return
	}
	t.Fatal("1,000 commits on a full disk and no error")
}

// TestOpenRetiresTheSharedDedupeMarks: marks of the layout where all
// windows shared the 'd' key space are deleted on open, and nothing else
// is: offsets, horizons and the marks of today's layout stay.
func TestOpenRetiresTheSharedDedupeMarks(t *testing.T) {
	fs := vfs.NewMem()
	st, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	keep := [][]byte{[]byte("hin/0"), []byte("min/0\x00bucket+identity"), []byte("k\x00\x00\x00\x01row")}
	retired := [][]byte{[]byte("d\x80\x00\x00\x00\x00\x00\x00\x00identity-one...."), []byte("d\xff\xff\xff\xff\xff\xff\xff\xffidentity-two....")}
	b := st.NewBatch()
	for _, k := range append(append([][]byte{}, keep...), retired...) {
		b.Set(k, []byte{1})
	}
	b.SetOffset("in", 0, 42)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	st.Close()

	st, err = Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, k := range retired {
		if ok, err := st.Has(k); err != nil || ok {
			t.Errorf("retired mark %q: present %v, %v", k, ok, err)
		}
	}
	for _, k := range keep {
		if ok, err := st.Has(k); err != nil || !ok {
			t.Errorf("key %q: present %v, %v; want it kept", k, ok, err)
		}
	}
	if off, ok, err := st.Offset("in", 0); err != nil || !ok || off != 42 {
		t.Errorf("offset %d %v %v, want 42", off, ok, err)
	}
}
