// goload: a load generator for etcd v3 endpoints (Synod or etcd) built on etcd's own Go client,
// clientv3 (etcd 3.4 as packaged by Debian). Its flags, workloads and --json output follow
// `synod bench <workload>` (Sources/SynodBench), so `synod bench compare` can run the same row
// with both clients and decode both results as a BenchResult.
//
// Build offline with Tools/goload/build.sh; see Tools/goload/README.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/ioutil"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// BenchTLS mirrors SynodBench's BenchTLS.
type BenchTLS struct {
	CAFile   *string `json:"caFile,omitempty"`
	CertFile *string `json:"certFile,omitempty"`
	KeyFile  *string `json:"keyFile,omitempty"`
}

// BenchOptions mirrors SynodBench's BenchOptions: the same JSON keys, the same meaning. Optional
// Swift properties (total, rate, tls) are pointers and left out when absent, as Swift's
// JSONEncoder does.
type BenchOptions struct {
	Workload        string    `json:"workload"`
	Endpoints       []string  `json:"endpoints"`
	Conns           int       `json:"conns"`
	Clients         int       `json:"clients"`
	DurationSeconds float64   `json:"durationSeconds"`
	Total           *int      `json:"total,omitempty"`
	Rate            *float64  `json:"rate,omitempty"`
	Target          string    `json:"target"`
	KeySpace        int       `json:"keySpace"`
	KeyPrefix       string    `json:"keyPrefix"`
	ValueBytes      int       `json:"valueBytes"`
	Consistency     string    `json:"consistency"`
	ReadRatio       float64   `json:"readRatio"`
	Watchers        int       `json:"watchers"`
	Seed            uint64    `json:"seed"`
	TLS             *BenchTLS `json:"tls,omitempty"`
}

// BenchResult mirrors SynodBench's BenchResult.
type BenchResult struct {
	Options     BenchOptions   `json:"options"`
	Targets     []string       `json:"targets"`
	Operations  int            `json:"operations"`
	Errors      map[string]int `json:"errors"`
	Seconds     float64        `json:"seconds"`
	Throughput  float64        `json:"throughput"`
	Latency     LatencySummary `json:"latency"`
	CASFailures *int           `json:"casFailures,omitempty"`
}

// clientSettings are the flags that change how the client runs, not what the servers are asked
// to do (like synod bench's --client-stack); they are not part of the JSON options.
type clientSettings struct {
	sharedWatchStream bool
	keepAliveTime     time.Duration
	windowSize        int
	verbose           bool
	quiet             bool
}

const (
	requestTimeout   = 10 * time.Second // deadline of every request, as synod bench
	discoveryTimeout = 5 * time.Second  // leader discovery and connection set-up
	unavailablePause = 10 * time.Millisecond
	populateBatch    = 64 // puts per pre-populating Txn (etcd's default limit is 128)
)

var workloads = []string{"put", "get", "txn-cas", "mixed", "watch"}

func main() {
	options, settings, asJSON, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "goload: %v\n", err)
		os.Exit(2)
	}
	result, err := run(options, settings)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goload %s: %v\n", options.Workload, err)
		os.Exit(1)
	}
	if asJSON {
		out, err := json.MarshalIndent(result, "", "  ")
		if err != nil {
			fmt.Fprintf(os.Stderr, "goload: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(string(out))
	} else {
		fmt.Println(renderText(result))
	}
}

func parseFlags(args []string) (BenchOptions, clientSettings, bool, error) {
	fs := flag.NewFlagSet("goload", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: goload --workload put|get|mixed|txn-cas|watch [flags]\n"+
			"  (a workload may also be given as the first argument: goload put --clients 8)\n\n")
		fs.PrintDefaults()
	}
	workload := fs.String("workload", "put", "put, get, mixed, txn-cas or watch (as `synod bench <workload>`)")
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "comma-separated etcd v3 endpoints (host:port, http://host:port, https://host:port with --cacert)")
	conns := fs.Int("conns", 1, "gRPC connections (one clientv3 client each); clients are spread over them round-robin")
	clients := fs.Int("clients", 1, "concurrent clients (closed loop: one request outstanding each)")
	duration := fs.String("duration", "10s", "run length: seconds or with a unit (500ms, 10s, 1m); ignored with --total")
	total := fs.Int("total", 0, "stop after this many requests (watch: this many puts) instead of after --duration")
	rate := fs.Float64("rate", 0, "open loop: requests per second over all clients, latency from the scheduled time (default closed loop)")
	target := fs.String("target", "leader", "leader (connections go to the member Maintenance.Status names leader) or all (round-robin over the endpoints)")
	keySpace := fs.Int("key-space", 10000, "number of distinct keys")
	keyPrefix := fs.String("key-prefix", "bench/", "prefix of every key")
	valueSize := fs.Int("value-size", 256, "bytes per value")
	fs.IntVar(valueSize, "value-bytes", 256, "alias of --value-size")
	consistency := fs.String("consistency", "linearizable", "linearizable or serializable reads (get, mixed)")
	readRatio := fs.Float64("read-ratio", 0.9, "fraction of reads in mixed (0...1)")
	watchers := fs.Int("watchers", 100, "watch streams in the watch workload (spread over --conns)")
	seed := fs.Uint64("seed", 1, "seed of the key choice (same sequence as synod bench with the same seed)")
	cacert := fs.String("cacert", "", "PEM CA bundle that verifies the servers (TLS)")
	cert := fs.String("cert", "", "PEM client certificate (with --key)")
	key := fs.String("key", "", "PEM private key of --cert")
	asJSON := fs.Bool("json", false, "print only the JSON result (SynodBench's BenchResult) on stdout")
	quiet := fs.Bool("quiet", false, "no live progress line")
	shared := fs.Bool("shared-watch-stream", false, "watch: let clientv3 multiplex the watchers of a connection on one Watch stream (default: one stream per watcher, as synod bench)")
	keepAlive := fs.Duration("keepalive-time", 0, "clientv3 DialKeepAliveTime (0: no keepalive PINGs, clientv3's default)")
	windowSize := fs.Int("window-size", 0, "gRPC stream and connection receive windows in bytes; 65535 or more turns off grpc-go's BDP estimation and its PINGs (0: grpc-go's default dynamic window, as every clientv3 user gets)")
	verbose := fs.Bool("verbose", false, "clientv3's own log (warnings such as retries) on stderr")

	// Accept the synod bench shape too: the workload as the first argument.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append([]string{"--workload", args[0]}, args[1:]...)
	}
	if err := fs.Parse(args); err != nil {
		return BenchOptions{}, clientSettings{}, false, err
	}
	if fs.NArg() > 0 {
		return BenchOptions{}, clientSettings{}, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	seconds, err := parseDuration(*duration)
	if err != nil {
		return BenchOptions{}, clientSettings{}, false, err
	}
	var eps []string
	for _, e := range strings.Split(*endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	o := BenchOptions{
		Workload: *workload, Endpoints: eps, Conns: *conns, Clients: *clients, DurationSeconds: seconds,
		Target: *target, KeySpace: *keySpace, KeyPrefix: *keyPrefix, ValueBytes: *valueSize,
		Consistency: *consistency, ReadRatio: *readRatio, Watchers: *watchers, Seed: *seed,
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["total"] {
		o.Total = total
	}
	if set["rate"] {
		o.Rate = rate
	}
	if *cacert != "" || *cert != "" || *key != "" {
		o.TLS = &BenchTLS{}
		if *cacert != "" {
			o.TLS.CAFile = cacert
		}
		if *cert != "" {
			o.TLS.CertFile = cert
		}
		if *key != "" {
			o.TLS.KeyFile = key
		}
	}
	if problem := validationProblem(o); problem != "" {
		return o, clientSettings{}, false, errors.New(problem)
	}
	return o, clientSettings{sharedWatchStream: *shared, keepAliveTime: *keepAlive, windowSize: *windowSize, verbose: *verbose, quiet: *quiet}, *asJSON, nil
}

// parseDuration reads `10`, `10s`, `500ms`, `1m`, `1.5m`, `1h` as seconds (synod bench's rules).
func parseDuration(text string) (float64, error) {
	t := strings.ToLower(strings.TrimSpace(text))
	for _, u := range []struct {
		suffix string
		scale  float64
	}{{"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}} {
		if strings.HasSuffix(t, u.suffix) {
			if n, err := strconv.ParseFloat(strings.TrimSuffix(t, u.suffix), 64); err == nil {
				return n * u.scale, nil
			}
		}
	}
	if n, err := strconv.ParseFloat(t, 64); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("--duration '%s' is not a duration (e.g. 10, 10s, 500ms, 1m)", text)
}

// validationProblem: synod bench's checks and messages (BenchOptions.validationProblem).
func validationProblem(o BenchOptions) string {
	known := false
	for _, w := range workloads {
		known = known || w == o.Workload
	}
	switch {
	case !known:
		return "--workload must be one of " + strings.Join(workloads, ", ")
	case o.Target != "leader" && o.Target != "all":
		return "--target must be leader or all"
	case o.Consistency != "linearizable" && o.Consistency != "serializable":
		return "--consistency must be linearizable or serializable"
	case len(o.Endpoints) == 0:
		return "--endpoints must name at least one endpoint"
	case o.Conns < 1 || o.Conns > 10000:
		return "--conns must be in 1...10000"
	case o.Clients < 1 || o.Clients > 100000:
		return "--clients must be in 1...100000"
	case o.Total != nil && *o.Total < 1:
		return "--total must be at least 1"
	case o.Total == nil && !(o.DurationSeconds > 0 && o.DurationSeconds <= 86400):
		return "--duration must be more than 0 s and at most 24 h"
	case o.Rate != nil && !(*o.Rate > 0 && *o.Rate <= 10000000):
		return "--rate must be in (0, 10000000] requests per second"
	case o.KeySpace < 1 || o.KeySpace > 10000000:
		return "--key-space must be in 1...10000000"
	case o.ValueBytes < 0 || o.ValueBytes > 1<<20:
		return "--value-size must be in 0...1048576"
	case o.Workload == "watch" && o.ValueBytes < 8:
		return "--value-size must be at least 8 for watch (the value carries the send time)"
	case o.KeyPrefix == "":
		return "--key-prefix must not be empty"
	case !(o.ReadRatio >= 0 && o.ReadRatio <= 1):
		return "--read-ratio must be in 0...1"
	case o.Watchers < 1 || o.Watchers > 100000:
		return "--watchers must be in 1...100000"
	case o.TLS != nil && (o.TLS.CertFile == nil) != (o.TLS.KeyFile == nil):
		return "--cert and --key go together"
	}
	return ""
}

// keys: the prefix and a zero-padded index, every key of one length (as synod bench).
func keys(o BenchOptions) []string {
	width := len(strconv.Itoa(maxInt(0, o.KeySpace-1)))
	out := make([]string, o.KeySpace)
	for i := range out {
		out[i] = fmt.Sprintf("%s%0*d", o.KeyPrefix, width, i)
	}
	return out
}

// value: valueBytes printable bytes, 'a' + i % 26 (as synod bench).
func value(o BenchOptions) []byte {
	v := make([]byte, o.ValueBytes)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	return v
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// splitMix64 is SynodCore's SplitMix64, so a seed draws the same keys in both generators.
type splitMix64 struct{ state uint64 }

func (s *splitMix64) next() uint64 {
	s.state += 0x9E3779B97F4A7C15
	z := s.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (s *splitMix64) index(bound int) int { return int(s.next() % uint64(bound)) }
func (s *splitMix64) unit() float64       { return float64(s.next()>>11) * (1.0 / (1 << 53)) }

// clientSeed: client i's generator seed (KVClientLoop's).
func clientSeed(seed uint64, index int) uint64 { return seed + uint64(index)*0xD1B54A32D192ED03 }

// errorKind names a failed request as synod bench does: grpc-swift's code names
// ("unavailable", "deadlineExceeded", "internalError", ...), "cancelled", or "other".
func errorKind(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadlineExceeded"
	}
	if errors.Is(err, context.Canceled) {
		return "cancelled"
	}
	var code codes.Code
	if e, ok := err.(rpctypes.EtcdError); ok {
		code = e.Code()
	} else if s, ok := status.FromError(err); ok {
		code = s.Code()
	} else {
		return "other"
	}
	switch code {
	case codes.Canceled:
		return "cancelled"
	case codes.Internal:
		return "internalError"
	case codes.OK:
		return "other"
	}
	name := code.String()
	return strings.ToLower(name[:1]) + name[1:]
}

// tlsConfig builds the TLS configuration of every connection (nil: plaintext).
func tlsConfig(t *BenchTLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	config := &tls.Config{}
	if t.CAFile != nil {
		pem, err := ioutil.ReadFile(*t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate", *t.CAFile)
		}
		config.RootCAs = pool
	}
	if t.CertFile != nil && t.KeyFile != nil {
		pair, err := tls.LoadX509KeyPair(*t.CertFile, *t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %v", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// newClient is one clientv3 client of a single endpoint: with one endpoint, clientv3's
// balancer keeps exactly one gRPC (HTTP/2) connection. DialTimeout makes New wait until it is
// connected, so connection set-up never falls into the timed part of a run.
func newClient(endpoint string, tlsCfg *tls.Config, settings clientSettings) (*clientv3.Client, error) {
	logConfig := zap.NewProductionConfig()
	logConfig.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	if settings.verbose {
		logConfig.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
	}
	logConfig.OutputPaths = []string{"stderr"}
	logConfig.ErrorOutputPaths = []string{"stderr"}
	var dialOptions []grpc.DialOption
	if settings.windowSize > 0 {
		dialOptions = append(dialOptions, grpc.WithInitialWindowSize(int32(settings.windowSize)),
			grpc.WithInitialConnWindowSize(int32(settings.windowSize)))
	}
	return clientv3.New(clientv3.Config{
		DialOptions:       dialOptions,
		Endpoints:         []string{endpoint},
		DialTimeout:       discoveryTimeout,
		DialKeepAliveTime: settings.keepAliveTime,
		TLS:               tlsCfg,
		LogConfig:         &logConfig,
	})
}

// discoverTargets returns the endpoints the run uses: the leader's alone or all of them
// (EndpointDiscovery.targets: Maintenance.Status of every endpoint within 5 s).
func discoverTargets(o BenchOptions, tlsCfg *tls.Config, settings clientSettings) ([]string, error) {
	type answer struct {
		index          int
		member, leader uint64
		err            error
	}
	answers := make(chan answer, len(o.Endpoints))
	for i, ep := range o.Endpoints {
		go func(i int, ep string) {
			c, err := newClient(ep, tlsCfg, settings)
			if err != nil {
				answers <- answer{index: i, err: err}
				return
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), discoveryTimeout)
			defer cancel()
			s, err := c.Status(ctx, ep)
			if err != nil {
				answers <- answer{index: i, err: err}
				return
			}
			answers <- answer{index: i, member: s.Header.MemberId, leader: s.Leader}
		}(i, ep)
	}
	got := make([]answer, len(o.Endpoints))
	for range o.Endpoints {
		a := <-answers
		got[a.index] = a
	}
	var failures []string
	reachable := 0
	for i, a := range got {
		if a.err != nil {
			failures = append(failures, fmt.Sprintf("%s (%v)", o.Endpoints[i], connectFailureReason(o.Endpoints[i], a.err)))
		} else {
			reachable++
		}
	}
	hint := ""
	if o.TLS != nil {
		hint = "; with TLS this is also how a refused handshake shows: check that --cacert signed the servers' " +
			"certificates and that --cert/--key are signed by a CA the servers trust"
	}
	if o.Target == "all" {
		if len(failures) > 0 {
			return nil, fmt.Errorf("cannot reach %s%s", strings.Join(failures, ", "), hint)
		}
		return o.Endpoints, nil
	}
	if reachable == 0 {
		return nil, fmt.Errorf("cannot reach any endpoint: %s%s", strings.Join(failures, ", "), hint)
	}
	var named uint64
	for i, a := range got {
		if a.err == nil && a.leader != 0 && a.member == a.leader {
			return []string{o.Endpoints[i]}, nil
		}
		if a.err == nil && a.leader != 0 {
			named = a.leader
		}
	}
	if named != 0 {
		return nil, fmt.Errorf("no leader among the reachable endpoints: they name member %x as leader, "+
			"which is not one of them (add its endpoint or use --target all)", named)
	}
	return nil, errors.New("no leader found: the reachable endpoints report no leader")
}

// connectFailureReason: clientv3 reports a refused connection as the dial timeout's "context
// deadline exceeded" (grpc-go keeps retrying); a plain TCP dial tells what is wrong.
func connectFailureReason(endpoint string, err error) string {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err.Error()
	}
	address := endpoint
	if i := strings.Index(address, "://"); i >= 0 {
		address = address[i+3:]
	}
	conn, dialErr := net.DialTimeout("tcp", strings.TrimSuffix(address, "/"), time.Second)
	if dialErr != nil {
		var opErr *net.OpError
		if errors.As(dialErr, &opErr) && opErr.Err != nil {
			return opErr.Err.Error()
		}
		return dialErr.Error()
	}
	conn.Close()
	return "no answer within " + discoveryTimeout.String() + " (the port accepts connections)"
}

func run(o BenchOptions, settings clientSettings) (BenchResult, error) {
	tlsCfg, err := tlsConfig(o.TLS)
	if err != nil {
		return BenchResult{}, err
	}
	for _, ep := range o.Endpoints {
		if strings.HasPrefix(ep, "https://") && tlsCfg == nil {
			return BenchResult{}, fmt.Errorf("endpoint '%s': https:// needs TLS settings (--cacert, and --cert/--key for client certificates)", ep)
		}
	}
	targets, err := discoverTargets(o, tlsCfg, settings)
	if err != nil {
		return BenchResult{}, err
	}
	// `all` opens at least one connection per endpoint, so every endpoint gets load.
	count := o.Conns
	if o.Target == "all" && len(targets) > count {
		count = len(targets)
	}
	conns := make([]*clientv3.Client, count)
	dialErrs := make(chan error, count)
	for i := range conns {
		go func(i int) {
			c, err := newClient(targets[i%len(targets)], tlsCfg, settings)
			conns[i] = c
			dialErrs <- err
		}(i)
	}
	var firstDialErr error
	for range conns {
		if err := <-dialErrs; err != nil && firstDialErr == nil {
			firstDialErr = err
		}
	}
	if firstDialErr != nil {
		for i, c := range conns {
			if c == nil {
				firstDialErr = fmt.Errorf("%s: %s", targets[i%len(targets)], connectFailureReason(targets[i%len(targets)], firstDialErr))
				break
			}
		}
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if firstDialErr != nil {
		return BenchResult{}, fmt.Errorf("connecting: %v", firstDialErr)
	}

	drops := watchConnectionDrops(conns)
	var result BenchResult
	if o.Workload == "watch" {
		result, err = runWatch(o, conns, settings)
	} else {
		result, err = runKV(o, conns, settings)
	}
	if err != nil {
		return BenchResult{}, err
	}
	result.Options = o
	result.Targets = targets
	if n := drops(); n > 0 {
		// Not a failed request (clientv3 reconnects and retries), so not in BenchResult.errors,
		// but it changes what was measured.
		fmt.Fprintf(os.Stderr, "goload %s: note: %d connection drops during the run (a server GOAWAY or a closed "+
			"socket); clientv3 reconnected and retried, so the latencies include reconnections\n", o.Workload, n)
	}
	return result, nil
}

// watchConnectionDrops counts how often a connection leaves the READY state until the
// returned function is called (which stops counting and returns the count).
func watchConnectionDrops(conns []*clientv3.Client) func() int {
	ctx, cancel := context.WithCancel(context.Background())
	var drops int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(conn *grpc.ClientConn) {
			defer wg.Done()
			for {
				state := conn.GetState()
				if !conn.WaitForStateChange(ctx, state) {
					return
				}
				if state == connectivity.Ready {
					atomic.AddInt64(&drops, 1)
				}
			}
		}(c.ActiveConnection())
	}
	return func() int {
		cancel()
		wg.Wait()
		return int(atomic.LoadInt64(&drops))
	}
}

func renderText(r BenchResult) string {
	o := r.Options
	conns := o.Conns
	if o.Target == "all" && len(r.Targets) > conns {
		conns = len(r.Targets)
	}
	what := "goload (clientv3) " + o.Workload + ": "
	if o.Workload == "watch" {
		what += fmt.Sprintf("%d watchers and 1 writer on %d connections", o.Watchers, conns)
	} else {
		what += fmt.Sprintf("%d clients on %d connections", o.Clients, conns)
	}
	switch o.Workload {
	case "get":
		what += ", " + o.Consistency + " reads"
	case "mixed":
		what += fmt.Sprintf(", %.0f%% reads (%s)", o.ReadRatio*100, o.Consistency)
	}
	what += fmt.Sprintf(", %d keys, %d-byte values", o.KeySpace, o.ValueBytes)
	if o.Rate != nil {
		what += fmt.Sprintf(", open loop at %.0f/s", *o.Rate)
	} else {
		what += ", closed loop"
	}
	unit := "requests"
	if o.Workload == "watch" {
		unit = "events"
	}
	ms := func(us float64) string { return fmt.Sprintf("%.3f", us/1000) }
	l := r.Latency
	lines := []string{
		what,
		fmt.Sprintf("targets:    %s (%s)", strings.Join(r.Targets, ", "), o.Target),
		fmt.Sprintf("%-11s%d in %.2f s", unit+":", r.Operations, r.Seconds),
		fmt.Sprintf("throughput: %.1f %s/s", r.Throughput, unit),
	}
	if r.CASFailures != nil {
		lines = append(lines, fmt.Sprintf("cas:        %d succeeded, %d compare failures", r.Operations-*r.CASFailures, *r.CASFailures))
	}
	lines = append(lines, fmt.Sprintf("latency ms: min %s  mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s",
		ms(l.MinMicros), ms(l.MeanMicros), ms(l.P50Micros), ms(l.P90Micros), ms(l.P99Micros), ms(l.P999Micros), ms(l.MaxMicros)))
	if len(r.Errors) == 0 {
		lines = append(lines, "errors:     none")
	} else {
		totalErrors := 0
		var parts []string
		for _, k := range sortedKeys(r.Errors) {
			totalErrors += r.Errors[k]
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Errors[k]))
		}
		lines = append(lines, fmt.Sprintf("errors:     %d (%s)", totalErrors, strings.Join(parts, ", ")))
	}
	return strings.Join(lines, "\n")
}
