// Package s2sidecar is a small typed client for s2-sidecar: S2 stream reads over localhost gRPC.
//
// It wraps the generated stubs (package s2sidecarv1) with what every app needs when the sidecar
// restarts (clients/RESUME.md): ReadSession resumes where it stood, every record exactly once and
// in order; Read and CheckTail retry within their deadline; failures come back as *Error with
// what the sidecar said (ErrorInfo reason, BadRequest field, RetryInfo, tail and resume position).
package s2sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

// DefaultAddress is the sidecar's address when neither New's target nor S2_SIDECAR_ADDRESS says.
const DefaultAddress = "127.0.0.1:50051"

// DefaultTarget is S2_SIDECAR_ADDRESS when set (the Helm chart sets it in every app container),
// else DefaultAddress.
func DefaultTarget() string {
	if addr := os.Getenv("S2_SIDECAR_ADDRESS"); addr != "" {
		return addr
	}
	return DefaultAddress
}

// Client reads S2 streams through a sidecar. It is safe for concurrent use.
type Client struct {
	stub   pb.StreamServiceClient
	conn   *grpc.ClientConn // nil when the caller owns the connection
	cc     grpc.ClientConnInterface
	opts   options
	jitter func() float64 // nil: math/rand; tests pin it
	// answered: the sidecar has answered a call. Until then calls wait for the connection
	// (grpc.WaitForReady), so an app started before its sidecar waits for it instead of failing
	// fast; after, a sidecar restart is the retry policy's to ride out.
	answered atomic.Bool
}

type options struct {
	timeout  time.Duration
	token    string
	retry    RetryPolicy
	log      *slog.Logger
	dialOpts []grpc.DialOption
	key      *secretKey // WithEncryptionKey; nil: none
}

// An Option configures a Client.
type Option func(*options)

// WithTimeout bounds Read and CheckTail, retries included (Read adds the request's wait);
// default 30 s, 0 for none (the context's deadline and the retry budget still apply).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithToken sends the sidecar's app token (S2_SIDECAR_APP_TOKEN on the sidecar) with every call.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithRetryPolicy replaces DefaultRetryPolicy; RetryPolicy{MaxAttempts: 1} never retries.
func WithRetryPolicy(p RetryPolicy) Option { return func(o *options) { o.retry = p } }

// WithLogger logs each retry and resume at Info level (default: not logged).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithDialOptions adds options for the connection New dials (after the client's own).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

func buildOptions(opts []Option) options {
	o := options{timeout: 30 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.retry = o.retry.withDefaults()
	return o
}

// New connects (lazily: the first call dials) to the sidecar at target, a gRPC target such as
// "127.0.0.1:50051" or "unix:/run/s2-sidecar.sock"; "" means DefaultTarget(). The connection's
// reconnect backoff is bounded by the retry policy (100 ms to 1 s by default), not gRPC's default
// of up to 2 minutes, so a restarted sidecar is found again at once.
func New(target string, opts ...Option) (*Client, error) {
	if target == "" {
		target = DefaultTarget()
	}
	o := buildOptions(opts)
	if o.key != nil && o.key.err != nil {
		return nil, o.key.err
	}
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = o.retry.MinBackoff, o.retry.MaxBackoff
	dial := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()), // localhost
		// MinConnectTimeout is gRPC's default, spelled out: left 0 it would shrink to the backoff.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: 20 * time.Second}),
	}, o.dialOpts...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, err
	}
	return &Client{stub: pb.NewStreamServiceClient(conn), conn: conn, cc: conn, opts: o}, nil
}

// NewFromConn uses a connection the caller dialed and closes; WithDialOptions does not apply,
// and the connection's reconnect backoff is the caller's to bound.
func NewFromConn(conn grpc.ClientConnInterface, opts ...Option) *Client {
	return &Client{stub: pb.NewStreamServiceClient(conn), cc: conn, opts: buildOptions(opts)}
}

// WaitForReady waits until the connection to the sidecar is up (READY), connecting if it is
// idle; use it at start, before the first call, to wait for a sidecar that starts with the app.
// When ctx ends first it returns an error naming the target and the connection's last state
// (wrapping ctx.Err()). With NewFromConn it needs a *grpc.ClientConn (other connections: nil).
//
// Without it the first calls wait too (up to their timeout), until the sidecar first answers.
func (c *Client) WaitForReady(ctx context.Context) error {
	conn, ok := c.cc.(*grpc.ClientConn)
	if !ok {
		return nil
	}
	conn.Connect()
	for {
		state := conn.GetState()
		if state == connectivity.Ready {
			return nil
		}
		if !conn.WaitForStateChange(ctx, state) {
			return fmt.Errorf("s2-sidecar at %s is not ready (connection %s): %w", conn.Target(), state, ctx.Err())
		}
	}
}

// callOptions are the options of every call: grpc.WaitForReady until the sidecar first answers.
func (c *Client) callOptions(opts ...grpc.CallOption) []grpc.CallOption {
	if !c.answered.Load() {
		opts = append(opts, grpc.WaitForReady(true))
	}
	return opts
}

// noteAnswer records that the sidecar answered: err is nil, or a status the sidecar sent (not
// one for a connection that never came up, nor the caller's deadline or cancellation).
func (c *Client) noteAnswer(err error) {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return
	}
	c.answered.Store(true)
}

// Close closes the connection New dialed (not one given to NewFromConn).
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

func (c *Client) outgoing(ctx context.Context) context.Context {
	if c.opts.token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.opts.token)
}

// Read reads one batch: at most 1000 records and 1 MiB. With no start it reads at the tail, as
// the proto says, where it fails with OUT_OF_RANGE unless req.Wait > 0 long-polls for a record.
// NewReadRequest builds req without the generated pointers and oneof wrappers.
// Failures that a restart explains are retried while the timeout (plus the wait) allows.
// An encrypted stream's key is ctx's (ContextWithEncryptionKey), else the client's.
// req.IgnoreCommandRecords leaves command records (fence, trim) out; they still count toward
// req's count and bytes, as in S2's SDKs. A retry sends the same request.
func (c *Client) Read(ctx context.Context, req *pb.ReadRequest) (*pb.ReadResponse, error) {
	ctx, err := c.withKey(ctx)
	if err != nil {
		return nil, err
	}
	timeout := c.opts.timeout
	if timeout > 0 {
		timeout += time.Duration(req.GetWait()) * time.Second
	}
	resp, err := retrying(ctx, c, timeout, func(ctx context.Context, opts ...grpc.CallOption) (*pb.ReadResponse, error) {
		return c.stub.Read(ctx, req, opts...)
	})
	var e *Error
	if errors.As(err, &e) && e.Code == codes.OutOfRange && req.GetStart() == nil && req.Wait == nil {
		e.Message += " (a read with no start reads at the tail, as the proto says: pass a start, " +
			"e.g. s2sidecar.SeqNum(0) to read from the first record, or set Wait)"
	}
	return resp, err
}

// CheckTail returns the stream's tail, retried like Read (NewCheckTailRequest builds req).
func (c *Client) CheckTail(ctx context.Context, req *pb.CheckTailRequest) (*pb.CheckTailResponse, error) {
	return retrying(ctx, c, c.opts.timeout, func(ctx context.Context, opts ...grpc.CallOption) (*pb.CheckTailResponse, error) {
		return c.stub.CheckTail(ctx, req, opts...)
	})
}

// retrying makes a unary call, again after each retryable failure while the deadline and the
// retry budget allow; then it returns the last *Error.
func retrying[T any](ctx context.Context, c *Client, timeout time.Duration, call func(context.Context, ...grpc.CallOption) (T, error)) (T, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	ctx = c.outgoing(ctx)
	deadline, _ := ctx.Deadline()
	tries := newAttempts(c.opts.retry, c.jitter)
	for {
		var trailer metadata.MD
		resp, err := call(ctx, c.callOptions(grpc.Trailer(&trailer))...)
		c.noteAnswer(err)
		if err == nil {
			return resp, nil
		}
		e := newError(err, trailer)
		delay, ok := tries.retryDelay(e, time.Now(), deadline)
		if ok {
			c.opts.log.Info("s2sidecar: retrying", "after", delay, "error", e)
		}
		if !ok || !sleep(ctx, delay) {
			var zero T
			return zero, e
		}
	}
}

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
