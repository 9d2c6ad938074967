package owned_test

import (
	"sync"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/pipeline/owned"
)

type part struct {
	owned.Part
	batches int
}

// TestRetireWaitsForTheBatch: a part retired while its batch runs is
// retired once that batch is done, and refuses the next; its key then
// holds the new part.
func TestRetireWaitsForTheBatch(t *testing.T) {
	var m owned.Map[int32, *part]
	old, _ := m.GetOrCreate(3, func() (*part, error) { return &part{}, nil })
	if !old.Enter() {
		t.Fatal("a new part is not owned")
	}
	retired := make(chan struct{})
	go func() {
		m.Replace(3, &part{})
		close(retired)
	}()
	select {
	case <-retired:
		t.Fatal("the part was replaced while its batch ran")
	case <-time.After(50 * time.Millisecond):
	}
	old.batches++
	old.Leave()
	<-retired
	if old.Enter() {
		t.Error("a retired part took a batch")
	}
	old.Leave()
	cur, ok := m.Get(3)
	if !ok || cur == old || !cur.Enter() {
		t.Error("the key does not hold the new part, owned")
	}
	cur.Leave()
	if old.batches != 1 {
		t.Errorf("the retired part handled %d batches, want the 1 under way", old.batches)
	}
}

// TestMapConcurrent: parts created, retired and listed from many
// goroutines (run under -race).
func TestMapConcurrent(t *testing.T) {
	var m owned.Map[int, *part]
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				p, err := m.GetOrCreate(i%5, func() (*part, error) { return &part{}, nil })
				if err != nil {
					t.Error(err)
					return
				}
				if p.Enter() {
					p.batches++
				}
				p.Leave()
				if i%7 == g {
					m.Retire(i % 5)
				}
				_ = m.All()
			}
		}()
	}
	wg.Wait()
	if n := len(m.All()); n > 5 {
		t.Errorf("%d parts for 5 keys", n)
	}
}
