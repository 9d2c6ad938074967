package broker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// expirer removes consumer group members that stopped talking, as a
// Kafka broker's session timeout does.
//
// kfake starts a member's session timer only once its JoinGroup reply is
// written. A member whose connection dies while its join waits for the
// rebalance (a worker killed mid-rebalance) is still counted in, given
// partitions by the leader, and then never expires: it holds them, unread,
// for good. The expirer watches every member's group requests and, when
// one has been silent longer than Kafka would allow, sends the LeaveGroup
// its member would have sent, which makes the group rebalance without it.
type expirer struct {
	log  *slog.Logger
	addr string

	mu      sync.Mutex
	members map[memberKey]*memberSeen

	stop chan struct{}
	done chan struct{}
}

type memberKey struct{ group, member string }

type memberSeen struct {
	last time.Time
	// session and rebalance are the member's timeouts from its join;
	// joining is set while its last request was a join or a sync, which
	// the broker may hold for up to the rebalance timeout.
	session, rebalance time.Duration
	joining            bool
}

// Defaults until a member's join is seen: franz-go's and Kafka's.
const (
	defaultSession   = 45 * time.Second
	defaultRebalance = 60 * time.Second
	// expireGrace is added to a member's deadline: expiring a member a
	// little late costs nothing, a live one expired costs a rebalance.
	expireGrace = 3 * time.Second
)

func newExpirer(c *kfake.Cluster, addr string, log *slog.Logger) *expirer {
	e := &expirer{log: log, addr: addr, members: map[memberKey]*memberSeen{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, key := range []kmsg.Key{kmsg.JoinGroup, kmsg.SyncGroup, kmsg.Heartbeat, kmsg.OffsetCommit, kmsg.LeaveGroup} {
		c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			e.observe(req, time.Now())
			return nil, nil, false // observe only: the broker handles it
		})
	}
	return e
}

// observe notes a group request of a member.
func (e *expirer) observe(req kmsg.Request, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := func(group, member string) *memberSeen {
		if member == "" {
			return nil
		}
		k := memberKey{group, member}
		m := e.members[k]
		if m == nil {
			m = &memberSeen{session: defaultSession, rebalance: defaultRebalance}
			e.members[k] = m
		}
		m.last, m.joining = now, false
		return m
	}
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		if m := seen(r.Group, r.MemberID); m != nil {
			m.joining = true
			m.session = time.Duration(r.SessionTimeoutMillis) * time.Millisecond
			if r.RebalanceTimeoutMillis > 0 {
				m.rebalance = time.Duration(r.RebalanceTimeoutMillis) * time.Millisecond
			}
		}
	case *kmsg.SyncGroupRequest:
		if m := seen(r.Group, r.MemberID); m != nil {
			m.joining = true
		}
	case *kmsg.HeartbeatRequest:
		seen(r.Group, r.MemberID)
	case *kmsg.OffsetCommitRequest:
		seen(r.Group, r.MemberID)
	case *kmsg.LeaveGroupRequest:
		delete(e.members, memberKey{r.Group, r.MemberID})
		for _, m := range r.Members {
			delete(e.members, memberKey{r.Group, m.MemberID})
		}
	}
}

// expired removes and returns the members past their deadline at now.
func (e *expirer) expired(now time.Time) []memberKey {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []memberKey
	for k, m := range e.members {
		limit := m.session
		if m.joining {
			limit += m.rebalance
		}
		if now.Sub(m.last) > limit+expireGrace {
			out = append(out, k)
			delete(e.members, k)
		}
	}
	return out
}

// run checks every second until close. Members the broker already has
// when it starts (from its data dir) are watched from then on.
func (e *expirer) run() {
	defer close(e.done)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addr))
	if err != nil {
		e.log.Error("expiring silent group members: no client", "error", err)
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-e.stop:
		case <-e.done:
		}
		cancel()
	}()
	e.watchExisting(ctx, kadm.NewClient(cl))
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			for _, k := range e.expired(now) {
				e.leave(ctx, cl, k)
			}
		}
	}
}

func (e *expirer) watchExisting(ctx context.Context, adm *kadm.Client) {
	described, err := adm.DescribeGroups(ctx)
	if err != nil {
		return
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, g := range described {
		for _, m := range g.Members {
			k := memberKey{g.Group, m.MemberID}
			if e.members[k] == nil {
				e.members[k] = &memberSeen{last: now, session: defaultSession, rebalance: defaultRebalance, joining: true}
			}
		}
	}
}

// leave sends the LeaveGroup of a member that went silent.
func (e *expirer) leave(ctx context.Context, cl *kgo.Client, k memberKey) {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = k.group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = k.member
	reason := "cdcrecon broker: the member stopped talking; its session is over"
	m.Reason = &reason
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		e.log.Warn("expiring a silent group member", "group", k.group, "member", k.member, "error", err)
		return
	}
	if len(resp.Members) > 0 && resp.Members[0].ErrorCode == 0 {
		e.log.Info("expired a silent group member", "group", k.group, "member", k.member)
	}
}

func (e *expirer) close() {
	close(e.stop)
	<-e.done
}
