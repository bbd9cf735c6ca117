package dev.s2sidecar.client.example;

import dev.s2sidecar.client.ReadBatch;
import dev.s2sidecar.client.ReadLimit;
import dev.s2sidecar.client.ReadOptions;
import dev.s2sidecar.client.ReadSession;
import dev.s2sidecar.client.ReadStart;
import dev.s2sidecar.client.S2SidecarClient;
import dev.s2sidecar.client.SequencedRecord;
import dev.s2sidecar.client.SidecarException;
import dev.s2sidecar.client.StreamPosition;
import java.io.PrintStream;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Reads S2 streams through an s2-sidecar (the same command line and output as the Go and Node.js
 * examples):
 *
 * <pre>
 * Example -addr 127.0.0.1:50051 read   -stream orders -seq-num 0 -count 100
 * Example -addr 127.0.0.1:50051 read   -stream orders -timestamp 1700000005000 -until 1700000008000
 * Example -addr 127.0.0.1:50051 follow -stream orders -tail-offset 10 -n 11
 * Example -addr 127.0.0.1:50051 tail   -stream orders
 * Example -addr unix:/run/s2-sidecar.sock tail -stream orders
 * </pre>
 *
 * <p>-basin picks a basin (default: the sidecar's); -token (or env S2_SIDECAR_APP_TOKEN) sends the
 * sidecar's app token; -no-retry turns retries and resuming off. An encrypted stream's key
 * (base64): -encryption-key is the client's (handed to it as the raw bytes), -call-encryption-key
 * this call's (handed over as the String), which wins. Prints one JSON object per line: a record, a tail, or an error (then exits
 * with status 2).
 */
public final class Example {
  private static final PrintStream OUT = System.out;

  private Example() {}

  public static void main(String[] args) {
    Map<String, String> opts = new HashMap<>();
    String command = null;
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("-no-retry")) {
        opts.put("no-retry", "true");
      } else if (args[i].startsWith("-") && i + 1 < args.length) {
        opts.put(args[i].replaceFirst("^-+", ""), args[++i]);
      } else {
        command = args[i];
      }
    }
    if (command == null || !List.of("read", "follow", "tail").contains(command) || !opts.containsKey("stream")) {
      System.err.println("usage: Example [-addr ADDR] [-basin B] [-token T] [-no-retry] [-encryption-key K] read|follow|tail "
          + "-stream NAME [-seq-num N | -timestamp T | -tail-offset K] [-count C] [-until U] [-n N] [-call-encryption-key K]");
      System.exit(64);
    }
    S2SidecarClient.Builder builder = S2SidecarClient.builder()
        .basin(opts.getOrDefault("basin", ""))
        .token(opts.getOrDefault("token", System.getenv("S2_SIDECAR_APP_TOKEN")));
    if (opts.containsKey("addr")) {
      builder.target(opts.get("addr"));
    }
    if (opts.containsKey("encryption-key")) {
      builder.encryptionKey(Base64.getDecoder().decode(opts.get("encryption-key")));
    }
    if (opts.containsKey("no-retry")) {
      builder.resume(false); // no retries nor resuming; a first call still waits for the sidecar to start
    }
    int status = 0;
    try (S2SidecarClient client = builder.build()) {
      run(client, command, opts);
    } catch (SidecarException e) {
      OUT.println(json(error(e)));
      status = 2;
    }
    OUT.flush();
    System.exit(status);
  }

  private static void run(S2SidecarClient client, String command, Map<String, String> opts) {
    String stream = opts.get("stream");
    switch (command) {
      case "read" -> client.read(stream, options(opts)).records().forEach(Example::print);
      case "follow" -> {
        long n = Long.parseLong(opts.getOrDefault("n", "0"));
        long seen = 0;
        try (ReadSession session = client.readSession(stream, options(opts))) {
          while (session.hasNext()) {
            ReadBatch batch = session.next();
            for (SequencedRecord r : batch.records()) {
              print(r);
              if (n > 0 && ++seen >= n) {
                return; // closing the session cancels it
              }
            }
            OUT.flush();
          }
        }
      }
      case "tail" -> {
        StreamPosition tail = client.checkTail(stream);
        Map<String, Object> position = new LinkedHashMap<>();
        position.put("seq_num", tail.seqNum());
        position.put("timestamp", tail.timestamp());
        OUT.println(json(Map.of("tail", position)));
      }
      default -> throw new IllegalArgumentException(command);
    }
  }

  private static ReadOptions options(Map<String, String> opts) {
    ReadOptions o = ReadOptions.DEFAULT;
    if (opts.containsKey("seq-num")) {
      o = o.start(ReadStart.seqNum(Long.parseLong(opts.get("seq-num"))));
    }
    if (opts.containsKey("timestamp")) {
      o = o.start(ReadStart.timestamp(Long.parseLong(opts.get("timestamp"))));
    }
    if (opts.containsKey("tail-offset")) {
      o = o.start(ReadStart.tailOffset(Long.parseLong(opts.get("tail-offset"))));
    }
    if (opts.containsKey("count")) {
      o = o.limit(ReadLimit.count(Long.parseLong(opts.get("count"))));
    }
    if (opts.containsKey("until")) {
      o = o.until(Long.parseLong(opts.get("until")));
    }
    if (opts.containsKey("call-encryption-key")) {
      o = o.encryptionKey(opts.get("call-encryption-key"));
    }
    return o;
  }

  private static void print(SequencedRecord r) {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("seq_num", r.seqNum());
    out.put("timestamp", r.timestamp());
    out.put("headers", r.headers().stream().map(h -> List.of(h.nameUtf8(), h.valueUtf8())).toList());
    out.put("body", r.bodyUtf8());
    OUT.println(json(out));
  }

  private static Map<String, Object> error(SidecarException e) {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("error", grpcName(e.code().name())); // e.g. NotFound
    out.put("type", e.getClass().getSimpleName()); // e.g. StreamNotFound
    e.reason().ifPresent(r -> out.put("reason", r));
    out.put("message", e.getMessage());
    if (e instanceof SidecarException.InvalidArgument invalid) {
      invalid.field().ifPresent(f -> out.put("field", f));
    }
    e.retryAfter().ifPresent(d -> out.put("retry_after_ms", d.toMillis()));
    if (e instanceof SidecarException.RangeNotSatisfiable range) {
      out.put("tail_seq_num", range.tail().seqNum());
    }
    e.nextSeqNum().ifPresent(n -> out.put("next_seq_num", n));
    if (e instanceof SidecarException.StreamNotFound) {
      out.put("hint", "no such stream: check the name or create it");
    }
    return out;
  }

  /** "NOT_FOUND" -> "NotFound", the spelling grpcurl and grpc-go use. */
  private static String grpcName(String code) {
    StringBuilder b = new StringBuilder();
    for (String word : code.split("_")) {
      b.append(word.charAt(0)).append(word.substring(1).toLowerCase(java.util.Locale.ROOT));
    }
    return b.toString();
  }

  // Just enough JSON for this output (strings, numbers, lists, maps): no dependency for it.
  private static String json(Object value) {
    if (value instanceof Map<?, ?> m) {
      return m.entrySet().stream()
          .map(e -> json(String.valueOf(e.getKey())) + ":" + json(e.getValue()))
          .collect(Collectors.joining(",", "{", "}"));
    }
    if (value instanceof List<?> l) {
      return l.stream().map(Example::json).collect(Collectors.joining(",", "[", "]"));
    }
    if (value instanceof Number) {
      return value.toString();
    }
    String s = String.valueOf(value);
    StringBuilder b = new StringBuilder("\"");
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }
}
