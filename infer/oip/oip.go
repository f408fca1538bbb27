// Package oip is a client of the Open Inference Protocol (the KServe v2
// inference protocol) over gRPC: the protocol NVIDIA Triton, KServe and
// Seldon MLServer serve as inference.GRPCInferenceService. It speaks the
// four calls siglipd needs — server readiness, model readiness, model
// metadata, and inference with raw tensor contents — and nothing else.
//
// The messages of the protocol's grpc_predict_v2.proto are encoded with
// protowire (wire.go) rather than generated code: siglipd uses a handful
// of fields of five messages, and their numbers are fixed by the
// specification. wire_test.go checks the encoding against the field
// numbers, and the remote-backend tests run it against a real MLServer.
//
// Contract: a Client is safe for concurrent use. Every call blocks until
// its context ends at the latest; a server that is down fails a call at
// once with an error for which Unavailable reports true, and gRPC
// reconnects in the background with exponential backoff (Options.MaxBackoff),
// so the next call after the server is back succeeds. Close ends the
// connection; the caller owns the Client and closes it.
package oip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Options configure Dial.
type Options struct {
	// Target is the server's host:port.
	Target string
	// TLS, when set, encrypts the connection; nil is plaintext.
	TLS *tls.Config
	// Headers are sent with every call as gRPC metadata, e.g.
	// "authorization": "Bearer ...". Keys are lower-cased, as HTTP/2 wants.
	Headers map[string]string
	// MaxBackoff caps the wait between reconnection attempts (default 5s):
	// after a server restart the daemon is back within it.
	MaxBackoff time.Duration
	// MaxMessageBytes bounds a response (default 64 MiB): a batch of 256
	// 1024-dimensional float32 embeddings is 1 MiB.
	MaxMessageBytes int
}

// Client is a connection to one inference server.
type Client struct {
	conn    *grpc.ClientConn
	target  string
	headers metadata.MD
}

const service = "/inference.GRPCInferenceService/"

// Dial creates a client. It does not wait for the server: gRPC connects
// on the first call and reconnects by itself.
func Dial(opts Options) (*Client, error) {
	if opts.Target == "" {
		return nil, errors.New("oip: no server address")
	}
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = credentials.NewTLS(opts.TLS)
	}
	maxBackoff := opts.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	maxMsg := opts.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = 64 << 20
	}
	conn, err := grpc.NewClient("passthrough:///"+opts.Target,
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
	)
	if err != nil {
		return nil, fmt.Errorf("oip: %s: %w", opts.Target, err)
	}
	md := metadata.MD{}
	for k, v := range opts.Headers {
		md.Set(strings.ToLower(k), v)
	}
	return &Client{conn: conn, target: opts.Target, headers: md}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Target is the server's host:port.
func (c *Client) Target() string { return c.target }

func (c *Client) call(ctx context.Context, method string, req []byte) ([]byte, error) {
	if len(c.headers) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, c.headers)
	}
	var resp rawMessage
	if err := c.conn.Invoke(ctx, service+method, rawMessage(req), &resp); err != nil {
		return nil, &Error{Method: method, Target: c.target, err: err}
	}
	return resp, nil
}

// Error is a failed call.
type Error struct {
	Method, Target string
	err            error
}

func (e *Error) Error() string {
	st, _ := status.FromError(e.err)
	return fmt.Sprintf("inference server %s: %s: %s: %s", e.Target, e.Method, st.Code(), st.Message())
}

func (e *Error) Unwrap() error { return e.err }

// Code is the gRPC status code of err (codes.Unknown for other errors).
func Code(err error) codes.Code {
	var e *Error
	if errors.As(err, &e) {
		return status.Code(e.err)
	}
	return status.Code(err)
}

// Unavailable reports whether err means the server could not be reached
// or did not answer in time — a state that passes — rather than that it
// refused the request.
func Unavailable(err error) bool {
	switch Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// ServerReady asks whether the server is ready for inference.
func (c *Client) ServerReady(ctx context.Context) (bool, error) {
	resp, err := c.call(ctx, "ServerReady", nil)
	if err != nil {
		return false, err
	}
	return decodeReady(resp)
}

// ModelReady asks whether a model (at version; "" is the server's choice)
// is ready.
func (c *Client) ModelReady(ctx context.Context, name, version string) (bool, error) {
	resp, err := c.call(ctx, "ModelReady", encodeNameVersion(name, version))
	if err != nil {
		return false, err
	}
	return decodeReady(resp)
}

// Metadata is a model's metadata: what it takes and gives.
type Metadata struct {
	Name     string
	Versions []string
	Platform string
	Inputs   []TensorMetadata
	Outputs  []TensorMetadata
}

// TensorMetadata describes one input or output; -1 in Shape is a dimension
// of any size (the batch, usually).
type TensorMetadata struct {
	Name     string
	Datatype string // the protocol's names: FP32, FP16, INT64, INT32, ...
	Shape    []int64
}

// ModelMetadata asks for a model's metadata.
func (c *Client) ModelMetadata(ctx context.Context, name, version string) (Metadata, error) {
	resp, err := c.call(ctx, "ModelMetadata", encodeNameVersion(name, version))
	if err != nil {
		return Metadata{}, err
	}
	m, err := decodeMetadata(resp)
	if err != nil {
		return Metadata{}, fmt.Errorf("inference server %s: ModelMetadata %s: %w", c.target, name, err)
	}
	return m, nil
}

// Tensor is an input or output with its data as little-endian bytes, the
// protocol's raw tensor contents.
type Tensor struct {
	Name     string
	Datatype string
	Shape    []int64
	Raw      []byte
}

// Infer runs a model on inputs and returns the outputs named (all the
// model has when none are named), in the order the server gives them.
func (c *Client) Infer(ctx context.Context, model, version string, inputs []Tensor, outputs []string) ([]Tensor, error) {
	resp, err := c.call(ctx, "ModelInfer", encodeInferRequest(model, version, inputs, outputs))
	if err != nil {
		return nil, err
	}
	out, err := decodeInferResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("inference server %s: ModelInfer %s: %w", c.target, model, err)
	}
	return out, nil
}

// ElementSize is the size in bytes of one element of a datatype, 0 for
// the ones siglipd does not send or receive.
func ElementSize(datatype string) int {
	switch datatype {
	case "FP32", "INT32", "UINT32":
		return 4
	case "FP16", "INT16", "UINT16", "BF16":
		return 2
	case "FP64", "INT64", "UINT64":
		return 8
	case "INT8", "UINT8", "BOOL":
		return 1
	}
	return 0
}
