package dev.s2sidecar.client;

import dev.s2sidecar.v1.ReadRequest;
import dev.s2sidecar.v1.ReadSessionRequest;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.LongConsumer;

/** Between this package's records and the generated protobuf messages. */
final class Convert {
  private Convert() {}

  static ReadRequest readRequest(String basin, String stream, ReadOptions o) {
    ReadRequest.Builder b = ReadRequest.newBuilder()
            .setBasin(basin)
            .setStream(stream)
            .setClamp(o.clamp())
            .setIgnoreCommandRecords(o.ignoreCommandRecords());
    o.start().ifPresent(s -> setStart(s, b::setSeqNum, b::setTimestamp, b::setTailOffset));
    o.limit().count().ifPresent(b::setCount);
    o.limit().bytes().ifPresent(b::setBytes);
    o.until().ifPresent(b::setUntil);
    o.waitSeconds().ifPresent(b::setWait);
    return b.build();
  }

  static ReadSessionRequest readSessionRequest(String basin, String stream, ReadOptions o) {
    ReadSessionRequest.Builder b =
        ReadSessionRequest.newBuilder()
            .setBasin(basin)
            .setStream(stream)
            .setClamp(o.clamp())
            .setIgnoreCommandRecords(o.ignoreCommandRecords());
    o.start().ifPresent(s -> setStart(s, b::setSeqNum, b::setTimestamp, b::setTailOffset));
    o.limit().count().ifPresent(b::setCount);
    o.limit().bytes().ifPresent(b::setBytes);
    o.until().ifPresent(b::setUntil);
    o.waitSeconds().ifPresent(b::setWait);
    return b.build();
  }

  // The two request messages share the start oneof's fields but no Java type.
  private static void setStart(ReadStart start, LongConsumer seqNum, LongConsumer timestamp, LongConsumer tailOffset) {
    if (start instanceof ReadStart.SeqNum s) {
      seqNum.accept(s.value());
    } else if (start instanceof ReadStart.Timestamp t) {
      timestamp.accept(t.value());
    } else if (start instanceof ReadStart.TailOffset t) {
      tailOffset.accept(t.value());
    }
  }

  static StreamPosition position(dev.s2sidecar.v1.StreamPosition p) {
    return new StreamPosition(p.getSeqNum(), p.getTimestamp());
  }

  static ReadBatch batch(List<dev.s2sidecar.v1.SequencedRecord> records, Optional<StreamPosition> tail) {
    List<SequencedRecord> out = new ArrayList<>(records.size());
    for (dev.s2sidecar.v1.SequencedRecord r : records) {
      List<Header> headers = new ArrayList<>(r.getHeadersCount());
      for (dev.s2sidecar.v1.Header h : r.getHeadersList()) {
        headers.add(new Header(h.getName().toByteArray(), h.getValue().toByteArray()));
      }
      out.add(new SequencedRecord(r.getSeqNum(), r.getTimestamp(), headers, r.getBody().toByteArray()));
    }
    return new ReadBatch(out, tail);
  }

  static ReadBatch batch(dev.s2sidecar.v1.ReadResponse m) {
    return batch(m.getRecordsList(), m.hasTail() ? Optional.of(position(m.getTail())) : Optional.empty());
  }

  static ReadBatch batch(dev.s2sidecar.v1.ReadSessionResponse m) {
    ReadBatch b = batch(m.getRecordsList(), m.hasTail() ? Optional.of(position(m.getTail())) : Optional.empty());
    return new ReadBatch(b.records(), b.tail(), m.getCaughtUp());
  }
}
