package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
)

// epoch anchors nowNanos: time.Since reads Go's monotonic clock.
var epoch = time.Now()

func nowNanos() int64 { return int64(time.Since(epoch)) }

// runCounters are shared by every client of a run (relaxed statistics, as synod bench's).
type runCounters struct {
	issued    int64 // requests claimed (for --total)
	completed int64
	failed    int64
	stopped   int32
}

// claim takes one request of the total; false once the total is reached.
func (c *runCounters) claim(total *int) bool {
	if total == nil {
		return true
	}
	return atomic.AddInt64(&c.issued, 1)-1 < int64(*total)
}

// tally is what one client (or watcher) measured, apart from its latencies.
type tally struct {
	operations  int
	casFailures int
	errors      map[string]int
}

func (t *tally) fail(err error, counters *runCounters) string {
	kind := errorKind(err)
	if t.errors == nil {
		t.errors = map[string]int{}
	}
	t.errors[kind]++
	atomic.AddInt64(&counters.failed, 1)
	return kind
}

func (t *tally) merge(other tally) {
	t.operations += other.operations
	t.casFailures += other.casFailures
	for k, v := range other.errors {
		if t.errors == nil {
			t.errors = map[string]int{}
		}
		t.errors[k] += v
	}
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// reportProgress prints a live line on stderr four times a second while a run goes (only on a
// terminal, only without --quiet); the returned function stops it and clears the line.
func reportProgress(o BenchOptions, counters *runCounters, start int64, quiet bool) func() {
	if quiet {
		return func() {}
	}
	if info, err := os.Stderr.Stat(); err != nil || info.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(250 * time.Millisecond)
		defer ticker.Stop()
		last, lastAt := int64(0), start
		for {
			select {
			case <-done:
				fmt.Fprint(os.Stderr, "\r\x1b[K")
				return
			case <-ticker.C:
			}
			now := nowNanos()
			completed := atomic.LoadInt64(&counters.completed)
			recent := float64(completed-last) / (float64(now-lastAt) / 1e9)
			last, lastAt = completed, now
			line := fmt.Sprintf("%.1fs", float64(now-start)/1e9)
			if o.Total == nil {
				line += fmt.Sprintf("/%.0fs", o.DurationSeconds)
			}
			line += fmt.Sprintf("  %d", completed)
			if o.Total != nil {
				line += fmt.Sprintf("/%d", *o.Total)
			}
			line += fmt.Sprintf(" done  %.0f/s  errors %d", recent, atomic.LoadInt64(&counters.failed))
			fmt.Fprint(os.Stderr, "\r\x1b[K"+line)
		}
	}()
	return func() { close(done); <-finished }
}

func withTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), requestTimeout)
}

func readOptions(o BenchOptions) []clientv3.OpOption {
	if o.Consistency == "serializable" {
		return []clientv3.OpOption{clientv3.WithSerializable()}
	}
	return nil
}

// warmUp sends one Range (of the first key, with the run's consistency) on every connection
// before the clock starts, as synod bench's h2 stack does, so that every connection is past
// its HTTP/2 settings exchange. Fails only when no connection can carry a call.
func warmUp(o BenchOptions, conns []*clientv3.Client, keyList []string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func(i int, c *clientv3.Client) {
			defer wg.Done()
			ctx, cancel := withTimeout()
			defer cancel()
			_, errs[i] = c.Get(ctx, keyList[0], readOptions(o)...)
		}(i, c)
	}
	wg.Wait()
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed == len(conns) {
		return fmt.Errorf("no connection could carry a call (%d of %d failed): %v", failed, len(conns), first)
	}
	return nil
}

// populate writes every key once before a read workload (Txns of populateBatch puts from up
// to 16 concurrent writers), untimed, as synod bench does.
func populate(o BenchOptions, conns []*clientv3.Client, keyList []string, val string) error {
	batches := (len(keyList) + populateBatch - 1) / populateBatch
	workers := o.Clients
	if batches < workers {
		workers = batches
	}
	if workers > 16 {
		workers = 16
	}
	var next int64
	var mu sync.Mutex
	var failures []error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(c *clientv3.Client) {
			defer wg.Done()
			for {
				batch := int(atomic.AddInt64(&next, 1) - 1)
				if batch >= batches {
					return
				}
				var ops []clientv3.Op
				for i := batch * populateBatch; i < len(keyList) && i < (batch+1)*populateBatch; i++ {
					ops = append(ops, clientv3.OpPut(keyList[i], val))
				}
				ctx, cancel := withTimeout()
				_, err := c.Txn(ctx).Then(ops...).Commit()
				cancel()
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			}
		}(conns[w%len(conns)])
	}
	wg.Wait()
	if len(failures) > 0 {
		return fmt.Errorf("pre-populating the key space failed: %d of %d batches of puts failed (%v)", len(failures), batches, failures[0])
	}
	return nil
}

// runKV runs put, get, mixed or txn-cas: o.Clients goroutines, client i on connection
// i % len(conns), each closed loop (or on its own open-loop schedule).
func runKV(o BenchOptions, conns []*clientv3.Client, settings clientSettings) (BenchResult, error) {
	keyList := keys(o)
	val := string(value(o))
	if o.Workload == "get" || o.Workload == "mixed" {
		if err := populate(o, conns, keyList, val); err != nil {
			return BenchResult{}, err
		}
	}
	if err := warmUp(o, conns, keyList); err != nil {
		return BenchResult{}, err
	}
	counters := &runCounters{}
	hist := newShardedHistogram(o.Clients, 64)
	tallies := make([]tally, o.Clients)
	start := nowNanos()
	stopProgress := reportProgress(o, counters, start, settings.quiet)
	var wg sync.WaitGroup
	for i := 0; i < o.Clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tallies[i] = kvClient(o, i, conns[i%len(conns)], keyList, val, counters, hist.shard(i), start)
		}(i)
	}
	wg.Wait()
	seconds := float64(nowNanos()-start) / 1e9
	stopProgress()
	var all tally
	for _, t := range tallies {
		all.merge(t)
	}
	result := BenchResult{
		Operations: all.operations, Errors: all.errors, Seconds: seconds,
		Latency: hist.merged().summary(),
	}
	if result.Errors == nil {
		result.Errors = map[string]int{}
	}
	if seconds > 0 {
		result.Throughput = float64(all.operations) / seconds
	}
	if o.Workload == "txn-cas" {
		result.CASFailures = &all.casFailures
	}
	return result, nil
}

// kvClient is one client: a request, its latency from just before the call to just after the
// response (open loop: from the scheduled time), then the next.
func kvClient(o BenchOptions, index int, c *clientv3.Client, keyList []string, val string,
	counters *runCounters, h *histogram, start int64) tally {
	var t tally
	random := splitMix64{state: clientSeed(o.Seed, index)}
	var end int64 = -1
	if o.Total == nil {
		end = start + int64(o.DurationSeconds*1e9)
	}
	var interval int64
	scheduled := start
	if o.Rate != nil {
		interval = int64(float64(o.Clients) * 1e9 / *o.Rate)
		if interval < 1 {
			interval = 1
		}
		scheduled += interval * int64(index) / int64(o.Clients)
	}
	var lastSeen []int64
	if o.Workload == "txn-cas" {
		lastSeen = make([]int64, len(keyList))
	}
	reads := readOptions(o)
	for {
		var begin int64
		if interval > 0 {
			if end >= 0 && scheduled >= end {
				break
			}
			if !counters.claim(o.Total) {
				break
			}
			if wait := scheduled - nowNanos(); wait > 0 {
				time.Sleep(time.Duration(wait))
			}
			begin = scheduled
			scheduled += interval
		} else {
			now := nowNanos()
			if end >= 0 && now >= end {
				break
			}
			if !counters.claim(o.Total) {
				break
			}
			begin = now
		}
		k := random.index(len(keyList))
		key := keyList[k]
		ctx, cancel := withTimeout()
		var err error
		switch o.Workload {
		case "put":
			_, err = c.Put(ctx, key, val)
		case "get":
			_, err = c.Get(ctx, key, reads...)
		case "mixed":
			if random.unit() < o.ReadRatio {
				_, err = c.Get(ctx, key, reads...)
			} else {
				_, err = c.Put(ctx, key, val)
			}
		case "txn-cas":
			var resp *clientv3.TxnResponse
			resp, err = c.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", lastSeen[k])).
				Then(clientv3.OpPut(key, val)).
				Else(clientv3.OpGet(key)).
				Commit()
			if err == nil {
				if resp.Succeeded {
					lastSeen[k] = resp.Header.Revision
				} else {
					t.casFailures++
					lastSeen[k] = 0
					if len(resp.Responses) > 0 {
						if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
							lastSeen[k] = r.Kvs[0].ModRevision
						}
					}
				}
			}
		}
		done := nowNanos()
		cancel()
		if err != nil {
			if t.fail(err, counters) == "unavailable" && interval == 0 {
				time.Sleep(unavailablePause)
			}
			continue
		}
		h.recordNanos(done - begin)
		t.operations++
		atomic.AddInt64(&counters.completed, 1)
	}
	return t
}
