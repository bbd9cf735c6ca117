package s2sidecar

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"google.golang.org/grpc/metadata"
)

// EncryptionKeyHeader is the metadata an encrypted stream's key travels in, S2's own header.
const EncryptionKeyHeader = "s2-encryption-key"

// EncryptionKey is the key of an encrypted stream (the sidecar's docs/encryption.md):
// the 32 raw bytes as a []byte (the client base64-encodes them), or their standard padded base64,
// as S2 takes it, as a string. Its length and alphabet are the sidecar's to check: a malformed key
// is an *Error with codes.InvalidArgument, which names no key.
type EncryptionKey interface{ []byte | string }

// errUnprintableKey: gRPC carries printable ASCII only. The value is never in an error.
var errUnprintableKey = errors.New("s2sidecar: an encryption key given as a string must be base64 text (printable ASCII); pass the raw key as []byte")

// secretKey holds an encoded key. The client keeps it behind a pointer and formats it as
// "[redacted]", so neither fmt's %v / %+v / %#v of a Client, nor a context printed with one, nor
// a log line shows it.
type secretKey struct {
	b64 string
	err error // a key gRPC could not carry: the calls that would send it fail with this
}

func (*secretKey) String() string             { return "[redacted]" }
func (*secretKey) GoString() string           { return "[redacted]" }
func (*secretKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

func newSecretKey[K EncryptionKey](key K) *secretKey {
	switch k := any(key).(type) {
	case []byte:
		return &secretKey{b64: base64.StdEncoding.EncodeToString(k)}
	case string:
		for i := 0; i < len(k); i++ {
			if k[i] < ' ' || k[i] > '~' {
				return &secretKey{err: errUnprintableKey}
			}
		}
		return &secretKey{b64: k}
	}
	panic("unreachable: EncryptionKey is []byte or string")
}

// WithEncryptionKey is the key of encrypted streams, sent with every Read and ReadSession (and
// every resume of a session); a call's own key (ContextWithEncryptionKey) wins. CheckTail sends
// none: S2 answers tails without one.
func WithEncryptionKey[K EncryptionKey](key K) Option {
	k := newSecretKey(key)
	return func(o *options) { o.key = k }
}

type keyContextKey struct{}

// ContextWithEncryptionKey gives the Read or ReadSession made with the returned context its own
// key, instead of the client's (WithEncryptionKey); a session keeps it for every resume.
func ContextWithEncryptionKey[K EncryptionKey](ctx context.Context, key K) context.Context {
	return context.WithValue(ctx, keyContextKey{}, newSecretKey(key))
}

// withKey adds the key of a read (ctx's, else the client's) to ctx's outgoing metadata.
func (c *Client) withKey(ctx context.Context) (context.Context, error) {
	key := c.opts.key
	if k, ok := ctx.Value(keyContextKey{}).(*secretKey); ok {
		key = k
	}
	if key == nil {
		return ctx, nil
	}
	if key.err != nil {
		return ctx, key.err
	}
	return metadata.AppendToOutgoingContext(ctx, EncryptionKeyHeader, key.b64), nil
}
