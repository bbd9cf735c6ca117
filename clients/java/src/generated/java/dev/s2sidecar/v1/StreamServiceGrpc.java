package dev.s2sidecar.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Reads S2 streams. Every method names a stream by `basin` and `stream`.
 * Errors use standard gRPC codes with a message that says what to change:
 * INVALID_ARGUMENT (a bad name, more than one start, a bad limit),
 * NOT_FOUND (no such basin or stream), OUT_OF_RANGE (start past the tail;
 * the tail is in the message and in trailing metadata `s2-tail-seq-num`),
 * UNAVAILABLE (S2 unreachable, or the sidecar is shutting down; sessions put
 * the next seq_num to read in trailing metadata `s2-next-seq-num`),
 * UNAUTHENTICATED / PERMISSION_DENIED (S2 refused the sidecar's token).
 * Request metadata:
 * - `authorization: Bearer &lt;token&gt;`: required on every call when the sidecar
 *   is started with S2_SIDECAR_APP_TOKEN (else UNAUTHENTICATED).
 * - `s2-encryption-key`: the key of an encrypted stream (a basin with a
 *   `stream_cipher`), as S2 takes it: standard padded base64 of the 32-byte
 *   key. Per call on `Read` and `ReadSession` (a session keeps it for every
 *   resume); `CheckTail` needs none. It wins over the sidecar's own key files
 *   (--encryption-keys-dir). Missing for an encrypted stream:
 *   FAILED_PRECONDITION; malformed: INVALID_ARGUMENT; wrong: PERMISSION_DENIED.
 *   Never logged. docs/encryption.md.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class StreamServiceGrpc {

  private StreamServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "s2sidecar.v1.StreamService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.s2sidecar.v1.ReadRequest,
      dev.s2sidecar.v1.ReadResponse> getReadMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Read",
      requestType = dev.s2sidecar.v1.ReadRequest.class,
      responseType = dev.s2sidecar.v1.ReadResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.s2sidecar.v1.ReadRequest,
      dev.s2sidecar.v1.ReadResponse> getReadMethod() {
    io.grpc.MethodDescriptor<dev.s2sidecar.v1.ReadRequest, dev.s2sidecar.v1.ReadResponse> getReadMethod;
    if ((getReadMethod = StreamServiceGrpc.getReadMethod) == null) {
      synchronized (StreamServiceGrpc.class) {
        if ((getReadMethod = StreamServiceGrpc.getReadMethod) == null) {
          StreamServiceGrpc.getReadMethod = getReadMethod =
              io.grpc.MethodDescriptor.<dev.s2sidecar.v1.ReadRequest, dev.s2sidecar.v1.ReadResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Read"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.s2sidecar.v1.ReadRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.s2sidecar.v1.ReadResponse.getDefaultInstance()))
              .setSchemaDescriptor(new StreamServiceMethodDescriptorSupplier("Read"))
              .build();
        }
      }
    }
    return getReadMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.s2sidecar.v1.ReadSessionRequest,
      dev.s2sidecar.v1.ReadSessionResponse> getReadSessionMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ReadSession",
      requestType = dev.s2sidecar.v1.ReadSessionRequest.class,
      responseType = dev.s2sidecar.v1.ReadSessionResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<dev.s2sidecar.v1.ReadSessionRequest,
      dev.s2sidecar.v1.ReadSessionResponse> getReadSessionMethod() {
    io.grpc.MethodDescriptor<dev.s2sidecar.v1.ReadSessionRequest, dev.s2sidecar.v1.ReadSessionResponse> getReadSessionMethod;
    if ((getReadSessionMethod = StreamServiceGrpc.getReadSessionMethod) == null) {
      synchronized (StreamServiceGrpc.class) {
        if ((getReadSessionMethod = StreamServiceGrpc.getReadSessionMethod) == null) {
          StreamServiceGrpc.getReadSessionMethod = getReadSessionMethod =
              io.grpc.MethodDescriptor.<dev.s2sidecar.v1.ReadSessionRequest, dev.s2sidecar.v1.ReadSessionResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ReadSession"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.s2sidecar.v1.ReadSessionRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.s2sidecar.v1.ReadSessionResponse.getDefaultInstance()))
              .setSchemaDescriptor(new StreamServiceMethodDescriptorSupplier("ReadSession"))
              .build();
        }
      }
    }
    return getReadSessionMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.s2sidecar.v1.CheckTailRequest,
      dev.s2sidecar.v1.CheckTailResponse> getCheckTailMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CheckTail",
      requestType = dev.s2sidecar.v1.CheckTailRequest.class,
      responseType = dev.s2sidecar.v1.CheckTailResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.s2sidecar.v1.CheckTailRequest,
      dev.s2sidecar.v1.CheckTailResponse> getCheckTailMethod() {
    io.grpc.MethodDescriptor<dev.s2sidecar.v1.CheckTailRequest, dev.s2sidecar.v1.CheckTailResponse> getCheckTailMethod;
    if ((getCheckTailMethod = StreamServiceGrpc.getCheckTailMethod) == null) {
      synchronized (StreamServiceGrpc.class) {
        if ((getCheckTailMethod = StreamServiceGrpc.getCheckTailMethod) == null) {
          StreamServiceGrpc.getCheckTailMethod = getCheckTailMethod =
              io.grpc.MethodDescriptor.<dev.s2sidecar.v1.CheckTailRequest, dev.s2sidecar.v1.CheckTailResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CheckTail"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.s2sidecar.v1.CheckTailRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.s2sidecar.v1.CheckTailResponse.getDefaultInstance()))
              .setSchemaDescriptor(new StreamServiceMethodDescriptorSupplier("CheckTail"))
              .build();
        }
      }
    }
    return getCheckTailMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static StreamServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<StreamServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<StreamServiceStub>() {
        @java.lang.Override
        public StreamServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new StreamServiceStub(channel, callOptions);
        }
      };
    return StreamServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static StreamServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<StreamServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<StreamServiceBlockingV2Stub>() {
        @java.lang.Override
        public StreamServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new StreamServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return StreamServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static StreamServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<StreamServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<StreamServiceBlockingStub>() {
        @java.lang.Override
        public StreamServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new StreamServiceBlockingStub(channel, callOptions);
        }
      };
    return StreamServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static StreamServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<StreamServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<StreamServiceFutureStub>() {
        @java.lang.Override
        public StreamServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new StreamServiceFutureStub(channel, callOptions);
        }
      };
    return StreamServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Reads S2 streams. Every method names a stream by `basin` and `stream`.
   * Errors use standard gRPC codes with a message that says what to change:
   * INVALID_ARGUMENT (a bad name, more than one start, a bad limit),
   * NOT_FOUND (no such basin or stream), OUT_OF_RANGE (start past the tail;
   * the tail is in the message and in trailing metadata `s2-tail-seq-num`),
   * UNAVAILABLE (S2 unreachable, or the sidecar is shutting down; sessions put
   * the next seq_num to read in trailing metadata `s2-next-seq-num`),
   * UNAUTHENTICATED / PERMISSION_DENIED (S2 refused the sidecar's token).
   * Request metadata:
   * - `authorization: Bearer &lt;token&gt;`: required on every call when the sidecar
   *   is started with S2_SIDECAR_APP_TOKEN (else UNAUTHENTICATED).
   * - `s2-encryption-key`: the key of an encrypted stream (a basin with a
   *   `stream_cipher`), as S2 takes it: standard padded base64 of the 32-byte
   *   key. Per call on `Read` and `ReadSession` (a session keeps it for every
   *   resume); `CheckTail` needs none. It wins over the sidecar's own key files
   *   (--encryption-keys-dir). Missing for an encrypted stream:
   *   FAILED_PRECONDITION; malformed: INVALID_ARGUMENT; wrong: PERMISSION_DENIED.
   *   Never logged. docs/encryption.md.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Reads one batch: at most 1000 records and 1 MiB of metered bytes.
     * Returns as soon as any record is available. At the tail, `wait` &gt; 0
     * long-polls for up to `wait` seconds (at most 60) and returns the first
     * records appended, or an empty batch when the wait runs out.
     * </pre>
     */
    default void read(dev.s2sidecar.v1.ReadRequest request,
        io.grpc.stub.StreamObserver<dev.s2sidecar.v1.ReadResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getReadMethod(), responseObserver);
    }

    /**
     * <pre>
     * Streams records from a start. With no stop (`count`, `bytes`, `until`)
     * it follows the stream live for ever; with a stop it ends there, or at
     * the tail unless `wait` says how long to wait for more. Survives upstream
     * failures by resuming after the last record sent: every record arrives
     * exactly once, in order. While following live, heartbeats (a message with
     * no records and `tail` set) say the session is caught up and healthy;
     * `caught_up` says it on every message.
     * </pre>
     */
    default void readSession(dev.s2sidecar.v1.ReadSessionRequest request,
        io.grpc.stub.StreamObserver<dev.s2sidecar.v1.ReadSessionResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getReadSessionMethod(), responseObserver);
    }

    /**
     * <pre>
     * Returns the stream's tail: the seq_num the next record will get, and the
     * timestamp of the last record.
     * </pre>
     */
    default void checkTail(dev.s2sidecar.v1.CheckTailRequest request,
        io.grpc.stub.StreamObserver<dev.s2sidecar.v1.CheckTailResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCheckTailMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service StreamService.
   * <pre>
   * Reads S2 streams. Every method names a stream by `basin` and `stream`.
   * Errors use standard gRPC codes with a message that says what to change:
   * INVALID_ARGUMENT (a bad name, more than one start, a bad limit),
   * NOT_FOUND (no such basin or stream), OUT_OF_RANGE (start past the tail;
   * the tail is in the message and in trailing metadata `s2-tail-seq-num`),
   * UNAVAILABLE (S2 unreachable, or the sidecar is shutting down; sessions put
   * the next seq_num to read in trailing metadata `s2-next-seq-num`),
   * UNAUTHENTICATED / PERMISSION_DENIED (S2 refused the sidecar's token).
   * Request metadata:
   * - `authorization: Bearer &lt;token&gt;`: required on every call when the sidecar
   *   is started with S2_SIDECAR_APP_TOKEN (else UNAUTHENTICATED).
   * - `s2-encryption-key`: the key of an encrypted stream (a basin with a
   *   `stream_cipher`), as S2 takes it: standard padded base64 of the 32-byte
   *   key. Per call on `Read` and `ReadSession` (a session keeps it for every
   *   resume); `CheckTail` needs none. It wins over the sidecar's own key files
   *   (--encryption-keys-dir). Missing for an encrypted stream:
   *   FAILED_PRECONDITION; malformed: INVALID_ARGUMENT; wrong: PERMISSION_DENIED.
   *   Never logged. docs/encryption.md.
   * </pre>
   */
  public static abstract class StreamServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return StreamServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service StreamService.
   * <pre>
   * Reads S2 streams. Every method names a stream by `basin` and `stream`.
   * Errors use standard gRPC codes with a message that says what to change:
   * INVALID_ARGUMENT (a bad name, more than one start, a bad limit),
   * NOT_FOUND (no such basin or stream), OUT_OF_RANGE (start past the tail;
   * the tail is in the message and in trailing metadata `s2-tail-seq-num`),
   * UNAVAILABLE (S2 unreachable, or the sidecar is shutting down; sessions put
   * the next seq_num to read in trailing metadata `s2-next-seq-num`),
   * UNAUTHENTICATED / PERMISSION_DENIED (S2 refused the sidecar's token).
   * Request metadata:
   * - `authorization: Bearer &lt;token&gt;`: required on every call when the sidecar
   *   is started with S2_SIDECAR_APP_TOKEN (else UNAUTHENTICATED).
   * - `s2-encryption-key`: the key of an encrypted stream (a basin with a
   *   `stream_cipher`), as S2 takes it: standard padded base64 of the 32-byte
   *   key. Per call on `Read` and `ReadSession` (a session keeps it for every
   *   resume); `CheckTail` needs none. It wins over the sidecar's own key files
   *   (--encryption-keys-dir). Missing for an encrypted stream:
   *   FAILED_PRECONDITION; malformed: INVALID_ARGUMENT; wrong: PERMISSION_DENIED.
   *   Never logged. docs/encryption.md.
   * </pre>
   */
  public static final class StreamServiceStub
      extends io.grpc.stub.AbstractAsyncStub<StreamServiceStub> {
    private StreamServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected StreamServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new StreamServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Reads one batch: at most 1000 records and 1 MiB of metered bytes.
     * Returns as soon as any record is available. At the tail, `wait` &gt; 0
     * long-polls for up to `wait` seconds (at most 60) and returns the first
     * records appended, or an empty batch when the wait runs out.
     * </pre>
     */
    public void read(dev.s2sidecar.v1.ReadRequest request,
        io.grpc.stub.StreamObserver<dev.s2sidecar.v1.ReadResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getReadMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Streams records from a start. With no stop (`count`, `bytes`, `until`)
     * it follows the stream live for ever; with a stop it ends there, or at
     * the tail unless `wait` says how long to wait for more. Survives upstream
     * failures by resuming after the last record sent: every record arrives
     * exactly once, in order. While following live, heartbeats (a message with
     * no records and `tail` set) say the session is caught up and healthy;
     * `caught_up` says it on every message.
     * </pre>
     */
    public void readSession(dev.s2sidecar.v1.ReadSessionRequest request,
        io.grpc.stub.StreamObserver<dev.s2sidecar.v1.ReadSessionResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getReadSessionMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Returns the stream's tail: the seq_num the next record will get, and the
     * timestamp of the last record.
     * </pre>
     */
    public void checkTail(dev.s2sidecar.v1.CheckTailRequest request,
        io.grpc.stub.StreamObserver<dev.s2sidecar.v1.CheckTailResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCheckTailMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service StreamService.
   * <pre>
   * Reads S2 streams. Every method names a stream by `basin` and `stream`.
   * Errors use standard gRPC codes with a message that says what to change:
   * INVALID_ARGUMENT (a bad name, more than one start, a bad limit),
   * NOT_FOUND (no such basin or stream), OUT_OF_RANGE (start past the tail;
   * the tail is in the message and in trailing metadata `s2-tail-seq-num`),
   * UNAVAILABLE (S2 unreachable, or the sidecar is shutting down; sessions put
   * the next seq_num to read in trailing metadata `s2-next-seq-num`),
   * UNAUTHENTICATED / PERMISSION_DENIED (S2 refused the sidecar's token).
   * Request metadata:
   * - `authorization: Bearer &lt;token&gt;`: required on every call when the sidecar
   *   is started with S2_SIDECAR_APP_TOKEN (else UNAUTHENTICATED).
   * - `s2-encryption-key`: the key of an encrypted stream (a basin with a
   *   `stream_cipher`), as S2 takes it: standard padded base64 of the 32-byte
   *   key. Per call on `Read` and `ReadSession` (a session keeps it for every
   *   resume); `CheckTail` needs none. It wins over the sidecar's own key files
   *   (--encryption-keys-dir). Missing for an encrypted stream:
   *   FAILED_PRECONDITION; malformed: INVALID_ARGUMENT; wrong: PERMISSION_DENIED.
   *   Never logged. docs/encryption.md.
   * </pre>
   */
  public static final class StreamServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<StreamServiceBlockingV2Stub> {
    private StreamServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected StreamServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new StreamServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Reads one batch: at most 1000 records and 1 MiB of metered bytes.
     * Returns as soon as any record is available. At the tail, `wait` &gt; 0
     * long-polls for up to `wait` seconds (at most 60) and returns the first
     * records appended, or an empty batch when the wait runs out.
     * </pre>
     */
    public dev.s2sidecar.v1.ReadResponse read(dev.s2sidecar.v1.ReadRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getReadMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Streams records from a start. With no stop (`count`, `bytes`, `until`)
     * it follows the stream live for ever; with a stop it ends there, or at
     * the tail unless `wait` says how long to wait for more. Survives upstream
     * failures by resuming after the last record sent: every record arrives
     * exactly once, in order. While following live, heartbeats (a message with
     * no records and `tail` set) say the session is caught up and healthy;
     * `caught_up` says it on every message.
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<?, dev.s2sidecar.v1.ReadSessionResponse>
        readSession(dev.s2sidecar.v1.ReadSessionRequest request) {
      return io.grpc.stub.ClientCalls.blockingV2ServerStreamingCall(
          getChannel(), getReadSessionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns the stream's tail: the seq_num the next record will get, and the
     * timestamp of the last record.
     * </pre>
     */
    public dev.s2sidecar.v1.CheckTailResponse checkTail(dev.s2sidecar.v1.CheckTailRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getCheckTailMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service StreamService.
   * <pre>
   * Reads S2 streams. Every method names a stream by `basin` and `stream`.
   * Errors use standard gRPC codes with a message that says what to change:
   * INVALID_ARGUMENT (a bad name, more than one start, a bad limit),
   * NOT_FOUND (no such basin or stream), OUT_OF_RANGE (start past the tail;
   * the tail is in the message and in trailing metadata `s2-tail-seq-num`),
   * UNAVAILABLE (S2 unreachable, or the sidecar is shutting down; sessions put
   * the next seq_num to read in trailing metadata `s2-next-seq-num`),
   * UNAUTHENTICATED / PERMISSION_DENIED (S2 refused the sidecar's token).
   * Request metadata:
   * - `authorization: Bearer &lt;token&gt;`: required on every call when the sidecar
   *   is started with S2_SIDECAR_APP_TOKEN (else UNAUTHENTICATED).
   * - `s2-encryption-key`: the key of an encrypted stream (a basin with a
   *   `stream_cipher`), as S2 takes it: standard padded base64 of the 32-byte
   *   key. Per call on `Read` and `ReadSession` (a session keeps it for every
   *   resume); `CheckTail` needs none. It wins over the sidecar's own key files
   *   (--encryption-keys-dir). Missing for an encrypted stream:
   *   FAILED_PRECONDITION; malformed: INVALID_ARGUMENT; wrong: PERMISSION_DENIED.
   *   Never logged. docs/encryption.md.
   * </pre>
   */
  public static final class StreamServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<StreamServiceBlockingStub> {
    private StreamServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected StreamServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new StreamServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Reads one batch: at most 1000 records and 1 MiB of metered bytes.
     * Returns as soon as any record is available. At the tail, `wait` &gt; 0
     * long-polls for up to `wait` seconds (at most 60) and returns the first
     * records appended, or an empty batch when the wait runs out.
     * </pre>
     */
    public dev.s2sidecar.v1.ReadResponse read(dev.s2sidecar.v1.ReadRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getReadMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Streams records from a start. With no stop (`count`, `bytes`, `until`)
     * it follows the stream live for ever; with a stop it ends there, or at
     * the tail unless `wait` says how long to wait for more. Survives upstream
     * failures by resuming after the last record sent: every record arrives
     * exactly once, in order. While following live, heartbeats (a message with
     * no records and `tail` set) say the session is caught up and healthy;
     * `caught_up` says it on every message.
     * </pre>
     */
    public java.util.Iterator<dev.s2sidecar.v1.ReadSessionResponse> readSession(
        dev.s2sidecar.v1.ReadSessionRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getReadSessionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns the stream's tail: the seq_num the next record will get, and the
     * timestamp of the last record.
     * </pre>
     */
    public dev.s2sidecar.v1.CheckTailResponse checkTail(dev.s2sidecar.v1.CheckTailRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCheckTailMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service StreamService.
   * <pre>
   * Reads S2 streams. Every method names a stream by `basin` and `stream`.
   * Errors use standard gRPC codes with a message that says what to change:
   * INVALID_ARGUMENT (a bad name, more than one start, a bad limit),
   * NOT_FOUND (no such basin or stream), OUT_OF_RANGE (start past the tail;
   * the tail is in the message and in trailing metadata `s2-tail-seq-num`),
   * UNAVAILABLE (S2 unreachable, or the sidecar is shutting down; sessions put
   * the next seq_num to read in trailing metadata `s2-next-seq-num`),
   * UNAUTHENTICATED / PERMISSION_DENIED (S2 refused the sidecar's token).
   * Request metadata:
   * - `authorization: Bearer &lt;token&gt;`: required on every call when the sidecar
   *   is started with S2_SIDECAR_APP_TOKEN (else UNAUTHENTICATED).
   * - `s2-encryption-key`: the key of an encrypted stream (a basin with a
   *   `stream_cipher`), as S2 takes it: standard padded base64 of the 32-byte
   *   key. Per call on `Read` and `ReadSession` (a session keeps it for every
   *   resume); `CheckTail` needs none. It wins over the sidecar's own key files
   *   (--encryption-keys-dir). Missing for an encrypted stream:
   *   FAILED_PRECONDITION; malformed: INVALID_ARGUMENT; wrong: PERMISSION_DENIED.
   *   Never logged. docs/encryption.md.
   * </pre>
   */
  public static final class StreamServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<StreamServiceFutureStub> {
    private StreamServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected StreamServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new StreamServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Reads one batch: at most 1000 records and 1 MiB of metered bytes.
     * Returns as soon as any record is available. At the tail, `wait` &gt; 0
     * long-polls for up to `wait` seconds (at most 60) and returns the first
     * records appended, or an empty batch when the wait runs out.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.s2sidecar.v1.ReadResponse> read(
        dev.s2sidecar.v1.ReadRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getReadMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Returns the stream's tail: the seq_num the next record will get, and the
     * timestamp of the last record.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.s2sidecar.v1.CheckTailResponse> checkTail(
        dev.s2sidecar.v1.CheckTailRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCheckTailMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_READ = 0;
  private static final int METHODID_READ_SESSION = 1;
  private static final int METHODID_CHECK_TAIL = 2;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final AsyncService serviceImpl;
    private final int methodId;

    MethodHandlers(AsyncService serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_READ:
          serviceImpl.read((dev.s2sidecar.v1.ReadRequest) request,
              (io.grpc.stub.StreamObserver<dev.s2sidecar.v1.ReadResponse>) responseObserver);
          break;
        case METHODID_READ_SESSION:
          serviceImpl.readSession((dev.s2sidecar.v1.ReadSessionRequest) request,
              (io.grpc.stub.StreamObserver<dev.s2sidecar.v1.ReadSessionResponse>) responseObserver);
          break;
        case METHODID_CHECK_TAIL:
          serviceImpl.checkTail((dev.s2sidecar.v1.CheckTailRequest) request,
              (io.grpc.stub.StreamObserver<dev.s2sidecar.v1.CheckTailResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getReadMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.s2sidecar.v1.ReadRequest,
              dev.s2sidecar.v1.ReadResponse>(
                service, METHODID_READ)))
        .addMethod(
          getReadSessionMethod(),
          io.grpc.stub.ServerCalls.asyncServerStreamingCall(
            new MethodHandlers<
              dev.s2sidecar.v1.ReadSessionRequest,
              dev.s2sidecar.v1.ReadSessionResponse>(
                service, METHODID_READ_SESSION)))
        .addMethod(
          getCheckTailMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.s2sidecar.v1.CheckTailRequest,
              dev.s2sidecar.v1.CheckTailResponse>(
                service, METHODID_CHECK_TAIL)))
        .build();
  }

  private static abstract class StreamServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    StreamServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.s2sidecar.v1.StreamProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("StreamService");
    }
  }

  private static final class StreamServiceFileDescriptorSupplier
      extends StreamServiceBaseDescriptorSupplier {
    StreamServiceFileDescriptorSupplier() {}
  }

  private static final class StreamServiceMethodDescriptorSupplier
      extends StreamServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    StreamServiceMethodDescriptorSupplier(java.lang.String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (StreamServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new StreamServiceFileDescriptorSupplier())
              .addMethod(getReadMethod())
              .addMethod(getReadSessionMethod())
              .addMethod(getCheckTailMethod())
              .build();
        }
      }
    }
    return result;
  }
}
