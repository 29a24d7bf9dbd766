package main

import (
	"context"
	"testing"

	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestBucketsCoverEveryValue(t *testing.T) {
	for _, v := range []uint64{1, 2047, 2048, 2049, 4095, 4096, 123456, histHighestMicro} {
		i := histIndex(v)
		if high := histHighest(i); v > high || (i > 0 && v <= histHighest(i-1)) {
			t.Fatalf("value %d: bucket %d spans (%d, %d]", v, i, histHighest(i-1), high)
		}
		if v >= 2048 && float64(histHighest(i)-v) > float64(v)/1000 {
			t.Fatalf("value %d: bucket %d too wide (high %d)", v, i, histHighest(i))
		}
	}
}

func TestPercentilesFollowHdrHistogram(t *testing.T) {
	h := newHistogram()
	for v := int64(1); v <= 1000; v++ {
		h.recordNanos(v * 1000)
	}
	s := h.summary()
	if s.Count != 1000 || s.MinMicros != 1 || s.MaxMicros != 1000 || s.P50Micros != 500 || s.P99Micros != 990 || s.P999Micros != 999 {
		t.Fatalf("summary %+v", s)
	}
	if s.MeanMicros != 500.5 {
		t.Fatalf("mean %v", s.MeanMicros)
	}
}

func TestSplitMix64MatchesSynodCore(t *testing.T) {
	// SplitMix64's reference output for seed 0 (Vigna's splitmix64.c).
	r := splitMix64{state: 0}
	if got := r.next(); got != 0xE220A8397B1DCDAF {
		t.Fatalf("first value %x", got)
	}
}

func TestErrorKindNames(t *testing.T) {
	cases := map[error]string{
		errTest{}:                                 "other",
		status.Error(codes.Unavailable, "x"):      "unavailable",
		status.Error(codes.DeadlineExceeded, "x"): "deadlineExceeded",
		status.Error(codes.Internal, "x"):         "internalError",
		status.Error(codes.Canceled, "x"):         "cancelled",
		context.DeadlineExceeded:                  "deadlineExceeded",
		rpctypes.ErrGRPCNoLeader:                  "unavailable",
		rpctypes.Error(rpctypes.ErrGRPCNoLeader):  "unavailable",
	}
	for err, want := range cases {
		if got := errorKind(err); got != want {
			t.Errorf("%v: %s, want %s", err, got, want)
		}
	}
}

type errTest struct{}

func (errTest) Error() string { return "x" }
