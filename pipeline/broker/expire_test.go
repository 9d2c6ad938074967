package broker

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestMemberDeadInItsJoinExpires: a member whose connection dies while
// its JoinGroup waits for the rebalance is counted in and given
// partitions; it must expire like any silent member, and the live member
// get every partition back. Without the expirer the dead member holds its
// share for good when kfake finds its connection closed before writing
// the join's reply, which is a coin toss: eight groups at once make
// that all but certain.
func TestMemberDeadInItsJoinExpires(t *testing.T) {
	b, err := Start(Config{Opts: []kfake.Opt{kfake.GroupMinSessionTimeout(time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for i := range 8 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			deadInJoin(t, b, "g"+strconv.Itoa(i), "t"+strconv.Itoa(i))
		})
	}
}

func deadInJoin(t *testing.T, b *Broker, group, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	admin, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		t.Fatal(err)
	}

	// The live member, with the eager range balancer: one round, so the
	// dead member's share is not taken back by a second.
	live, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.RangeBalancer()), kgo.SessionTimeout(1500*time.Millisecond), kgo.HeartbeatInterval(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() {
		for ctx.Err() == nil {
			live.PollFetches(ctx)
		}
	}()
	owners := func() map[string][]int32 {
		described, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return nil
		}
		out := map[string][]int32{}
		for _, m := range described[group].Members {
			if c, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range c.Topics {
					out[m.MemberID] = append(out[m.MemberID], tp.Partitions...)
				}
			}
		}
		return out
	}
	liveID := func() string { id, _ := live.GroupMetadata(); return id }
	waitFor := func(what string, ok func(map[string][]int32) bool) {
		t.Helper()
		for {
			o := owners()
			if ok(o) {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: never; owners %v", what, o)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	all := func(o map[string][]int32) bool {
		ps := o[liveID()]
		slices.Sort(ps)
		return len(o) == 1 && slices.Equal(ps, []int32{0, 1, 2, 3})
	}
	waitFor("the live member owns every partition", all)

	// The dead member: it joins, and its connection closes while the
	// broker holds its join for the rebalance.
	dead, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{topic}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType = group, "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 1500, 1000
	proto := kmsg.NewJoinGroupRequestProtocol()
	proto.Name, proto.Metadata = "range", meta.AppendTo(nil)
	join.Protocols = append(join.Protocols, proto)
	resp, err := join.RequestWith(ctx, dead)
	if err != nil || kerr.ErrorForCode(resp.ErrorCode) != kerr.MemberIDRequired {
		t.Fatalf("first join: %v %v", err, resp)
	}
	join.MemberID = resp.MemberID
	go func() { _, _ = join.RequestWith(ctx, dead) }()
	time.Sleep(100 * time.Millisecond)
	dead.Close()
	waitFor("the dead member is given partitions", func(o map[string][]int32) bool { return len(o[join.MemberID]) > 0 })

	// Session 1.5s, rebalance 1s, grace 3s: expired within about 6s.
	waitFor("the dead member expires and the live one owns every partition again", all)
}
