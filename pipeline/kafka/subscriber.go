package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Subscriber is a Watermill Subscriber on a franz-go consumer group. See the
// package documentation for its delivery contract. It is safe for concurrent
// use.
type Subscriber struct {
	cfg SubscriberConfig
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
	wg     sync.WaitGroup
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber validates cfg and returns a Subscriber. It does not connect:
// each Subscribe call creates its own group member.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring subscriber: %w", err)
	}
	cfg.setDefaults()
	return &Subscriber{cfg: cfg, log: cfg.logger(), subs: map[*subscription]struct{}{}}, nil
}

// Subscribe joins the consumer group for topic and returns the channel its
// messages arrive on. The channel is closed when ctx is canceled or the
// Subscriber is closed, after the acked offsets were committed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	sub := &subscription{
		cfg:     &s.cfg,
		log:     s.log.With("topic", topic, "group", s.cfg.ConsumerGroup),
		topic:   topic,
		ctx:     ctx,
		cancel:  cancel,
		out:     make(chan *message.Message),
		workers: map[int32]*partitionWorker{},
		floor:   map[int32]int64{},
		space:   make(chan struct{}, 1),
	}
	start := kgo.NewOffset().AtStart()
	if s.cfg.StartFrom == Latest {
		start = kgo.NewOffset().AtEnd()
	}
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(s.cfg.ConsumerGroup),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(start),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(s.cfg.CommitInterval),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(sub.onRevoked),
		kgo.OnPartitionsLost(sub.onLost),
		kgo.AdjustFetchOffsetsFn(sub.adjust),
		kgo.SessionTimeout(s.cfg.SessionTimeout),
		kgo.RebalanceTimeout(s.cfg.RebalanceTimeout),
	}, s.cfg.ClientOpts()...)
	if s.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(s.cfg.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("subscribing to %s: %w", topic, err)
	}
	sub.cl, sub.opts = cl, opts
	s.subs[sub] = struct{}{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sub.run()
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}()
	return sub.out, nil
}

// Close ends every subscription: workers stop, acked offsets are committed,
// members leave their groups and the message channels are closed. It returns
// when all of that is done and is safe to call more than once.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for sub := range s.subs {
		sub.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// subscription is one group member consuming one topic. Its poll loop hands
// records to one worker per partition; workers deliver and mark acked
// records for commit.
type subscription struct {
	cfg   *SubscriberConfig
	log   *slog.Logger
	topic string
	cl    *kgo.Client
	opts  []kgo.Opt // cl's, to join again as a new member
	// established is when the member first got an assignment; fenced
	// counts the times a static member was fenced since.
	established time.Time
	fenced      int
	ctx         context.Context
	cancel      context.CancelFunc
	out         chan *message.Message

	mu      sync.Mutex
	workers map[int32]*partitionWorker
	// floor is, by partition, the offset committed when it was assigned:
	// no lower offset is marked for commit.
	floor map[int32]int64

	// queued counts records handed to workers and not yet delivered by them;
	// the poll loop waits on space while it is at MaxBufferedRecords.
	queued atomic.Int64
	space  chan struct{}
}

func (s *subscription) run() {
	defer close(s.out)
	for s.waitForSpace() {
		// With BlockRebalanceOnPoll no revoke runs between this poll and
		// AllowRebalance, so records never reach a worker of a partition
		// that was already revoked.
		fetches := s.cl.PollRecords(s.ctx, s.cfg.MaxBufferedRecords)
		if s.ctx.Err() != nil || fetches.IsClientClosed() {
			s.cl.AllowRebalance()
			break
		}
		var fatal error
		fetches.EachError(func(topic string, p int32, err error) {
			switch {
			case errors.Is(err, context.Canceled):
			case s.cfg.Fatal != nil && refused(err):
				fatal = err
			default:
				s.log.Warn("fetch error, retrying", "partition", p, "error", err)
			}
		})
		if fatal != nil && errors.Is(fatal, kerr.FencedInstanceID) && s.rejoin() {
			continue
		}
		if fatal != nil {
			s.cl.AllowRebalance()
			s.cfg.Fatal(fmt.Errorf("consumer group %s: %w", s.cfg.ConsumerGroup, fatal))
			break
		}
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) > 0 {
				s.worker(ftp.Partition).push(ftp.Records)
			}
		})
		s.cl.AllowRebalance()
	}
	all := s.partitions()
	s.stop(all)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
	if err := s.cl.CommitMarkedOffsets(ctx); err != nil {
		s.log.Error("committing acked offsets on close", "error", err)
	}
	cancel()
	s.cl.Close()
}

// partitions returns the partitions that have a worker.
func (s *subscription) partitions() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.workers))
}

// rejoin handles a static member's FENCED_INSTANCE_ID: the broker gave
// its instance id to another member. A member that has held its
// partitions for two session timeouts or more is the established one — a
// broker restarted on its data can fence it with no one else there — so
// it joins again as a new member under the same id, which fences the
// other: a newcomer with a duplicate id is then fenced within its first
// two session timeouts and stops (rejoin reports false), leaving the
// established member running. The same holds after three fences: two
// members that keep taking the id from each other are a configuration
// error, not something a retry mends.
func (s *subscription) rejoin() bool {
	s.mu.Lock()
	established := s.established
	s.mu.Unlock()
	if s.cfg.InstanceID == "" || established.IsZero() || time.Since(established) < 2*s.cfg.SessionTimeout || s.fenced >= 3 {
		return false
	}
	s.fenced++
	s.log.Warn("fenced by another member with this instance id, joining again as the established member",
		"instance_id", s.cfg.InstanceID, "times", s.fenced)
	s.cl.AllowRebalance()
	all := s.partitions()
	s.stop(all)
	s.revoked(all)
	s.cl.Close()
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		s.log.Error("joining again", "error", err)
		return false
	}
	s.mu.Lock()
	s.cl = cl
	s.mu.Unlock()
	return true
}

// waitForSpace blocks while the workers hold MaxBufferedRecords records not
// yet delivered, and reports false once the subscription ends. Holding back the
// poll, rather than pausing partitions, keeps what franz-go already fetched:
// a paused partition's buffered records are dropped and fetched again.
func (s *subscription) waitForSpace() bool {
	for s.queued.Load() >= int64(s.cfg.MaxBufferedRecords) {
		select {
		case <-s.space:
		case <-s.ctx.Done():
			return false
		}
	}
	return s.ctx.Err() == nil
}

// release gives back n buffered records' worth of space.
func (s *subscription) release(n int) {
	if s.queued.Add(int64(-n)) < int64(s.cfg.MaxBufferedRecords) {
		select {
		case s.space <- struct{}{}:
		default:
		}
	}
}

// worker returns the partition's worker, starting it on first use. Only the
// poll loop calls it, so a worker is never created for a revoked partition.
func (s *subscription) worker(p int32) *partitionWorker {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workers[p]
	if w == nil {
		ctx, cancel := context.WithCancel(s.ctx)
		w = &partitionWorker{
			sub:       s,
			partition: p,
			ctx:       ctx,
			cancel:    cancel,
			done:      make(chan struct{}),
			wake:      make(chan struct{}, 1),
		}
		s.workers[p] = w
		go w.run()
	}
	return w
}

// stop ends the workers of partitions ps and waits for them. Records they
// held unacked are dropped, for the partitions' next owner to fetch again.
func (s *subscription) stop(ps []int32) {
	s.mu.Lock()
	var stopped []*partitionWorker
	for _, p := range ps {
		if w := s.workers[p]; w != nil {
			w.cancel()
			stopped = append(stopped, w)
			delete(s.workers, p)
		}
	}
	s.mu.Unlock()
	for _, w := range stopped {
		<-w.done
		w.mu.Lock()
		s.release(len(w.queue))
		w.queue = nil
		w.mu.Unlock()
	}
}

// adjust runs when partitions are assigned, with their committed offsets:
// it records the commit floors and lets the Assigned hook choose where
// each partition starts.
func (s *subscription) adjust(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	s.mu.Lock()
	if s.established.IsZero() {
		s.established = time.Now()
	}
	s.mu.Unlock()
	for p, o := range offsets[s.topic] {
		committed := o.EpochOffset().Offset
		if committed < 0 {
			committed = -1
		}
		s.mu.Lock()
		s.floor[p] = committed
		s.mu.Unlock()
		if s.cfg.Assigned == nil {
			continue
		}
		switch start := s.cfg.Assigned(s.topic, p, committed); {
		case start == FromStart:
			offsets[s.topic][p] = kgo.NewOffset().AtStart()
		case start >= 0 && start != committed:
			offsets[s.topic][p] = kgo.NewOffset().At(start)
		}
	}
	return offsets, nil
}

// mark marks a delivered record for commit unless that would commit an
// offset below the partition's floor.
func (s *subscription) mark(r *kgo.Record) {
	s.mu.Lock()
	floor, ok := s.floor[r.Partition]
	if ok && r.Offset+1 <= floor {
		s.mu.Unlock()
		return
	}
	cl := s.cl
	s.mu.Unlock()
	cl.MarkCommitRecords(r)
}

// revoked tells the Revoked hook about partitions whose workers stopped.
func (s *subscription) revoked(ps []int32) {
	s.mu.Lock()
	for _, p := range ps {
		delete(s.floor, p)
	}
	s.mu.Unlock()
	if s.cfg.Revoked != nil {
		for _, p := range ps {
			s.cfg.Revoked(s.topic, p)
		}
	}
}

func (s *subscription) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.stop(revoked[s.topic])
	defer s.revoked(revoked[s.topic])
	if s.ctx.Err() != nil {
		return // run commits once after stopping every worker
	}
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		s.log.Error("committing acked offsets on revoke", "error", err)
	}
}

func (s *subscription) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.log.Warn("partitions lost, dropping unacked records", "partitions", lost[s.topic])
	s.stop(lost[s.topic])
	s.revoked(lost[s.topic])
}

// partitionWorker delivers one partition's records in order, one message at
// a time, marking each for commit once it is acked.
type partitionWorker struct {
	sub       *subscription
	partition int32
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	wake      chan struct{}

	mu    sync.Mutex
	queue []*kgo.Record
}

// push queues records for delivery. It never blocks.
func (w *partitionWorker) push(rs []*kgo.Record) {
	w.sub.queued.Add(int64(len(rs)))
	w.mu.Lock()
	w.queue = append(w.queue, rs...)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take waits for queued records and takes them all; false when stopped.
// They still count as buffered until delivered (run releases them), so
// that MaxBufferedRecords bounds what the subscription holds in memory.
func (w *partitionWorker) take() ([]*kgo.Record, bool) {
	for {
		w.mu.Lock()
		rs := w.queue
		w.queue = nil
		w.mu.Unlock()
		if len(rs) > 0 {
			return rs, true
		}
		select {
		case <-w.wake:
		case <-w.ctx.Done():
			return nil, false
		}
	}
}

func (w *partitionWorker) run() {
	defer close(w.done)
	for {
		rs, ok := w.take()
		if !ok {
			return
		}
		if w.sub.cfg.Batch {
			for len(rs) > 0 {
				n := min(len(rs), w.sub.cfg.MaxBatchRecords)
				chunk := rs[:n]
				if !w.deliver(func() *message.Message { return w.batchMessage(chunk) }) {
					w.sub.release(len(rs))
					return
				}
				w.sub.mark(chunk[n-1])
				w.sub.release(n)
				rs = rs[n:]
			}
			continue
		}
		for i, r := range rs {
			if !w.deliver(func() *message.Message { return recordMessage(r) }) {
				w.sub.release(len(rs) - i)
				return
			}
			w.sub.mark(r)
			w.sub.release(1)
		}
	}
}

// deliver sends a message built by build and waits for its ack, building and
// sending it again after each nack. It returns false if the worker was
// stopped first; the message then stays unacked and uncommitted.
func (w *partitionWorker) deliver(build func() *message.Message) bool {
	var backoff time.Duration
	for {
		msg := build()
		// A message being handled when its partition is revoked or the
		// subscription closes is let finish, for up to DrainTimeout, so
		// that what its handler did is committed before the partition's
		// next owner starts: a hand-off then repeats nothing. Its context
		// ends only after that.
		ctx, cancel := context.WithCancel(context.WithoutCancel(w.ctx))
		msg.SetContext(ctx)
		select {
		case w.sub.out <- msg:
		case <-w.ctx.Done():
			cancel()
			return false
		}
		select {
		case <-msg.Acked():
			cancel()
			return true
		case <-msg.Nacked():
			cancel()
		case <-w.ctx.Done():
			t := time.NewTimer(w.sub.cfg.DrainTimeout)
			defer t.Stop()
			defer cancel()
			select {
			case <-msg.Acked():
				return true
			case <-msg.Nacked():
				return false
			case <-t.C:
			}
			// An ack racing the timeout must not be lost: an acked
			// message is marked for the commit that follows the stop.
			select {
			case <-msg.Acked():
				return true
			default:
				return false
			}
		}
		backoff = w.sub.cfg.NackBackoff.next(backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			return false
		}
	}
}

func (w *partitionWorker) batchMessage(rs []*kgo.Record) *message.Message {
	first, last := rs[0].Offset, rs[len(rs)-1].Offset
	payload := encodeBatch(make([]byte, 0, batchSize(rs)), rs)
	msg := message.NewMessage(recordID(w.sub.topic, w.partition, first)+"-"+strconv.FormatInt(last, 10), payload)
	msg.Metadata = message.Metadata{
		MetaTopic:      w.sub.topic,
		MetaPartition:  strconv.FormatInt(int64(w.partition), 10),
		MetaOffset:     strconv.FormatInt(first, 10),
		MetaLastOffset: strconv.FormatInt(last, 10),
		MetaCount:      strconv.Itoa(len(rs)),
	}
	return msg
}

// refused tells a group error that no retry mends: the member's
// configuration or rights are wrong.
func refused(err error) bool {
	var ge *kgo.ErrGroupSession
	if !errors.As(err, &ge) {
		return false
	}
	for _, e := range []error{kerr.InvalidSessionTimeout, kerr.GroupAuthorizationFailed, kerr.TopicAuthorizationFailed,
		kerr.InvalidGroupID, kerr.FencedInstanceID, kerr.GroupMaxSizeReached} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
