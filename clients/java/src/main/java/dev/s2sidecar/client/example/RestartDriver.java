package dev.s2sidecar.client.example;

import dev.s2sidecar.client.ReadBatch;
import dev.s2sidecar.client.ReadLimit;
import dev.s2sidecar.client.ReadOptions;
import dev.s2sidecar.client.ReadSession;
import dev.s2sidecar.client.ReadStart;
import dev.s2sidecar.client.S2SidecarClient;
import dev.s2sidecar.client.SequencedRecord;
import dev.s2sidecar.client.SidecarException;
import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * The restart test's driver (clients/RESUME.md): one auto-resuming ReadSession, one line per
 * record on stdout.
 *
 * <pre>
 * RestartDriver --addr ADDR --stream STREAM --start-seq-num N [--count N] [--encryption-key KEY]
 * </pre>
 *
 * <p>Prints {@code <seq_num> <body>} per record, flushed after each batch; exits 0 when the session
 * ends, or 1 after {@code error <STATUS>: <message>} on stderr. Logs each resume to stderr.
 */
public final class RestartDriver {
  private RestartDriver() {}

  public static void main(String[] args) {
    Map<String, String> opts = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      opts.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    if (!opts.containsKey("addr") || !opts.containsKey("stream") || !opts.containsKey("start-seq-num")) {
      System.err.println("usage: RestartDriver --addr ADDR --stream STREAM --start-seq-num N [--count N] [--encryption-key KEY]");
      System.exit(64);
    }
    ReadOptions options = ReadOptions.from(ReadStart.seqNum(Long.parseLong(opts.get("start-seq-num"))));
    if (opts.containsKey("count")) {
      options = options.limit(ReadLimit.count(Long.parseLong(opts.get("count"))));
    }
    // Buffered, flushed per batch: a println per record to System.out would flush each line.
    PrintStream out = new PrintStream(
        new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16), false, StandardCharsets.US_ASCII);
    S2SidecarClient.Builder builder = S2SidecarClient.builder().target(opts.get("addr"));
    if (opts.containsKey("encryption-key")) {
      builder.encryptionKey(opts.get("encryption-key")); // the client's key: every resume sends it
    }
    S2SidecarClient client = builder
        .retryListener((method, attempt, delay, cause) -> System.err.printf(
            "resume: %s attempt %d in %d ms after %s: %s%n",
            method, attempt, delay.toMillis(), cause.code(), cause.getMessage()))
        .build();
    int status = 0;
    try (client; ReadSession session = client.readSession(opts.get("stream"), options)) {
      while (session.hasNext()) {
        ReadBatch batch = session.next();
        for (SequencedRecord r : batch.records()) {
          out.append(Long.toString(r.seqNum())).append(' ').append(r.bodyUtf8()).append('\n');
        }
        out.flush();
      }
    } catch (SidecarException e) {
      out.flush();
      System.err.printf("error %s: %s%n", e.code(), e.getMessage());
      status = 1;
    }
    out.flush();
    System.exit(status);
  }
}
