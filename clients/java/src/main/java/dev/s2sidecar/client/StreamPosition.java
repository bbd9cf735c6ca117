package dev.s2sidecar.client;

/**
 * A position in a stream. For a tail: the seq_num the next record will get, and the timestamp
 * (milliseconds) of the last record.
 */
public record StreamPosition(long seqNum, long timestamp) {}
