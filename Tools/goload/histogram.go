package main

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// Latencies are kept in microseconds in a log-linear histogram with the layout of an
// HdrHistogram of 3 significant digits (the one synod bench uses): values below 2048 have a
// bucket each; above, every power-of-two range is split into 1024 buckets, so a bucket is
// never wider than 1/1024 of its values. Memory is fixed (about 17k counters per histogram)
// whatever the run length.
const (
	histSubBuckets   = 2048
	histHalf         = histSubBuckets / 2
	histHighestMicro = 60_000_000 // as synod bench: longer latencies are clamped to 60 s
)

var histBuckets = histIndex(histHighestMicro) + 1

func histIndex(v uint64) int {
	if v < histSubBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - 11 // v >> shift is in [1024, 2047]
	return histSubBuckets + (shift-1)*histHalf + int(v>>uint(shift)) - histHalf
}

// histHighest is the largest value that falls into bucket i (HdrHistogram's
// "highest equivalent value", which is what its percentiles report).
func histHighest(i int) uint64 {
	if i < histSubBuckets {
		return uint64(i)
	}
	k := i - histSubBuckets
	shift := uint(k/histHalf + 1)
	low := uint64(k%histHalf+histHalf) << shift
	return low + (uint64(1) << shift) - 1
}

// histogram is safe for concurrent recording (atomic adds); a run uses a few shards of it so
// that clients on different cores rarely touch the same counters.
type histogram struct {
	counts []uint64
	total  uint64
	sum    uint64 // microseconds
	min    uint64
	max    uint64
}

func newHistogram() *histogram {
	return &histogram{counts: make([]uint64, histBuckets), min: math.MaxUint64}
}

// recordNanos records the time between two monotonic readings, rounded to microseconds and
// clamped to 1 µs ... 60 s, as synod bench's LatencyRecorder does.
func (h *histogram) recordNanos(nanos int64) {
	if nanos < 0 {
		nanos = 0
	}
	micros := (uint64(nanos) + 500) / 1000
	if micros < 1 {
		micros = 1
	}
	if micros > histHighestMicro {
		micros = histHighestMicro
	}
	atomic.AddUint64(&h.counts[histIndex(micros)], 1)
	atomic.AddUint64(&h.total, 1)
	atomic.AddUint64(&h.sum, micros)
	for {
		old := atomic.LoadUint64(&h.min)
		if micros >= old || atomic.CompareAndSwapUint64(&h.min, old, micros) {
			break
		}
	}
	for {
		old := atomic.LoadUint64(&h.max)
		if micros <= old || atomic.CompareAndSwapUint64(&h.max, old, micros) {
			break
		}
	}
}

// merge adds other into h; call it when no one records any more.
func (h *histogram) merge(other *histogram) {
	for i, c := range other.counts {
		h.counts[i] += c
	}
	h.total += other.total
	h.sum += other.sum
	if other.min < h.min {
		h.min = other.min
	}
	if other.max > h.max {
		h.max = other.max
	}
}

// percentile follows HdrHistogram's valueAtPercentile: the smallest bucket whose cumulative
// count reaches ceil(p% of the total), reported as that bucket's highest value.
func (h *histogram) percentile(p float64) float64 {
	if h.total == 0 {
		return 0
	}
	if p >= 100 {
		return float64(h.max)
	}
	requested := math.Min(math.Max(math.Nextafter(p, 0), 0), 100)
	want := uint64(math.Ceil(requested * float64(h.total) / 100))
	if want < 1 {
		want = 1
	}
	var running uint64
	for i, c := range h.counts {
		running += c
		if running >= want {
			v := histHighest(i)
			if v > h.max {
				v = h.max
			}
			return float64(v)
		}
	}
	return float64(h.max)
}

// LatencySummary has the keys and units (microseconds) of SynodBench's LatencySummary.
type LatencySummary struct {
	Count      int     `json:"count"`
	MinMicros  float64 `json:"minMicros"`
	MeanMicros float64 `json:"meanMicros"`
	P50Micros  float64 `json:"p50Micros"`
	P90Micros  float64 `json:"p90Micros"`
	P99Micros  float64 `json:"p99Micros"`
	P999Micros float64 `json:"p999Micros"`
	MaxMicros  float64 `json:"maxMicros"`
}

func (h *histogram) summary() LatencySummary {
	if h.total == 0 {
		return LatencySummary{}
	}
	return LatencySummary{
		Count:      int(h.total),
		MinMicros:  float64(h.min),
		MeanMicros: float64(h.sum) / float64(h.total), // exact mean (HdrHistogram's uses bucket midpoints)
		P50Micros:  h.percentile(50),
		P90Micros:  h.percentile(90),
		P99Micros:  h.percentile(99),
		P999Micros: h.percentile(99.9),
		MaxMicros:  float64(h.max),
	}
}

// shardedHistogram spreads recorders over a few histograms (recorder i uses shard i % n).
type shardedHistogram struct{ shards []*histogram }

func newShardedHistogram(recorders, maxShards int) *shardedHistogram {
	n := recorders
	if n > maxShards {
		n = maxShards
	}
	if n < 1 {
		n = 1
	}
	s := &shardedHistogram{}
	for i := 0; i < n; i++ {
		s.shards = append(s.shards, newHistogram())
	}
	return s
}

func (s *shardedHistogram) shard(i int) *histogram { return s.shards[i%len(s.shards)] }

func (s *shardedHistogram) merged() *histogram {
	all := newHistogram()
	for _, h := range s.shards {
		all.merge(h)
	}
	return all
}
