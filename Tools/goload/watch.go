package main

import (
	"context"
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/mvcc/mvccpb"
	"google.golang.org/grpc/metadata"
)

const (
	watchDrain         = 5 * time.Second // time allowed for the events of acknowledged puts
	watchCreateTimeout = 5 * time.Second
)

// runWatch is synod bench's watch workload (LoadGeneratorWatch.swift): o.Watchers watches on
// the key prefix, watcher i on connection i % len(conns), and one writer on connection 0
// whose values start with the put's start time (monotonic nanoseconds, little endian). A
// watcher records, per event, the time from that put's start to the event's arrival.
// Operations are events received, summed over the watchers.
func runWatch(o BenchOptions, conns []*clientv3.Client, settings clientSettings) (BenchResult, error) {
	keyList := keys(o)
	if err := warmUp(o, conns, keyList); err != nil {
		return BenchResult{}, err
	}
	counters := &runCounters{}
	hist := newShardedHistogram(o.Watchers, 64)
	var created, events, lastEvent int64
	prefix := o.KeyPrefix
	watchCtx, stopWatching := context.WithCancel(context.Background())
	tallies := make([]tally, o.Watchers)
	var wg sync.WaitGroup
	for i := 0; i < o.Watchers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx := watchCtx
			if !settings.sharedWatchStream {
				// clientv3 multiplexes the watches of one client whose contexts carry the same
				// outgoing metadata onto one Watch stream; distinct metadata gives each watcher
				// its own stream, as synod bench opens one stream per watcher.
				ctx = metadata.AppendToOutgoingContext(ctx, "goload-watcher", strconv.Itoa(i))
			}
			c := conns[i%len(conns)]
			h := hist.shard(i)
			t := &tallies[i]
			for response := range c.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify()) {
				if response.Created {
					atomic.AddInt64(&created, 1)
				}
				if response.Canceled {
					if watchCtx.Err() == nil {
						if t.errors == nil {
							t.errors = map[string]int{}
						}
						if err := response.Err(); err != nil {
							t.fail(err, counters)
						}
						t.errors["watchCanceled"]++
					}
					break
				}
				if len(response.Events) == 0 {
					continue
				}
				now := nowNanos()
				for _, ev := range response.Events {
					if ev.Type != mvccpb.PUT {
						continue
					}
					sent := now
					if len(ev.Kv.Value) >= 8 {
						sent = int64(binary.LittleEndian.Uint64(ev.Kv.Value[:8]))
					}
					h.recordNanos(now - sent)
					t.operations++
				}
				atomic.StoreInt64(&lastEvent, now)
				atomic.AddInt64(&events, int64(len(response.Events)))
				atomic.AddInt64(&counters.completed, int64(len(response.Events)))
			}
		}(i)
	}
	// Wait (bounded) until every watch is created, so that no watcher misses early puts.
	waitStart := time.Now()
	for atomic.LoadInt64(&created) < int64(o.Watchers) && time.Since(waitStart) < watchCreateTimeout {
		time.Sleep(5 * time.Millisecond)
	}
	watching := int(atomic.LoadInt64(&created))

	writerStart := nowNanos()
	stopProgress := reportProgress(o, counters, writerStart, settings.quiet)
	writer := watchWriter(o, conns[0], keyList, counters, writerStart)
	writerEnd := nowNanos()
	expected := int64(writer.operations) * int64(watching)
	drainStart := time.Now()
	for atomic.LoadInt64(&events) < expected && time.Since(drainStart) < watchDrain {
		time.Sleep(2 * time.Millisecond)
	}
	atomic.StoreInt32(&counters.stopped, 1)
	stopWatching()
	wg.Wait()
	stopProgress()

	var all tally
	for _, t := range tallies {
		all.merge(t)
	}
	// The writer's puts are not operations of this workload, but its errors are errors.
	for k, v := range writer.errors {
		if all.errors == nil {
			all.errors = map[string]int{}
		}
		all.errors[k] += v
	}
	if all.errors == nil {
		all.errors = map[string]int{}
	}
	if missing := int(expected) - all.operations; missing > 0 {
		all.errors["missingEvents"] += missing
	}
	if watching < o.Watchers {
		all.errors["watchNotCreated"] += o.Watchers - watching
	}
	// From the first put to the last event (or the writer's end): the drain wait for missing
	// events does not dilute the throughput.
	end := writerEnd
	if last := atomic.LoadInt64(&lastEvent); last > end {
		end = last
	}
	seconds := float64(end-writerStart) / 1e9
	result := BenchResult{Operations: all.operations, Errors: all.errors, Seconds: seconds, Latency: hist.merged().summary()}
	if seconds > 0 {
		result.Throughput = float64(all.operations) / seconds
	}
	return result, nil
}

// watchWriter puts to random keys under the prefix, closed loop (or at --rate), for the
// duration or --total puts; every value begins with the put's start time.
func watchWriter(o BenchOptions, c *clientv3.Client, keyList []string, counters *runCounters, start int64) tally {
	var t tally
	val := value(o)
	random := splitMix64{state: o.Seed}
	var end int64 = -1
	if o.Total == nil {
		end = start + int64(o.DurationSeconds*1e9)
	}
	var interval int64
	if o.Rate != nil {
		interval = int64(1e9 / *o.Rate)
		if interval < 1 {
			interval = 1
		}
	}
	scheduled := start
	attempts := 0
	for {
		now := nowNanos()
		if interval > 0 {
			if end >= 0 && scheduled >= end {
				break
			}
			if wait := scheduled - now; wait > 0 {
				time.Sleep(time.Duration(wait))
				now = nowNanos()
			}
			scheduled += interval
		} else if end >= 0 && now >= end {
			break
		}
		if o.Total != nil && attempts >= *o.Total {
			break
		}
		attempts++
		binary.LittleEndian.PutUint64(val[:8], uint64(now))
		ctx, cancel := withTimeout()
		_, err := c.Put(ctx, keyList[random.index(len(keyList))], string(val))
		cancel()
		if err != nil {
			t.fail(err, counters)
			continue
		}
		t.operations++
	}
	return t
}
