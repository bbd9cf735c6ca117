# frozen_string_literal: true

require "base64"

module S2Sidecar
  # The key of an encrypted stream (the sidecar's docs/encryption.md), as the
  # s2-encryption-key metadata carries it: standard padded base64. Made from a binary String
  # (Encoding::BINARY, e.g. SecureRandom.random_bytes(32), File.binread, "...".b: the 32 raw bytes,
  # base64-encoded here) or any other String (the base64 text as S2 takes it). Length and alphabet
  # are the sidecar's to check (InvalidArgument, naming no key). #inspect and #to_s never show it.
  class EncryptionKey
    HEADER = "s2-encryption-key"

    # key: a String as above, or an EncryptionKey.
    def self.from(key)
      return key if key.is_a?(EncryptionKey)
      raise TypeError, "encryption_key must be a String (binary: raw bytes; else base64), not #{key.class}" \
        unless key.is_a?(String)

      return new(Base64.strict_encode64(key)) if key.encoding == Encoding::BINARY
      # gRPC carries printable ASCII only (and would otherwise fail with an opaque error).
      unless key.ascii_only? && key.match?(/\A[ -~]*\z/)
        raise ArgumentError, "encryption_key as text must be base64 (printable ASCII); pass the raw key as a binary String"
      end

      new(key.dup.freeze)
    end

    def initialize(base64)
      @base64 = base64
    end
    private_class_method :new

    # The call metadata carrying the key, merged into `metadata`.
    def metadata(metadata = {}) = metadata.merge(HEADER => @base64)

    def inspect = "#<S2Sidecar::EncryptionKey [redacted]>"
    alias to_s inspect
  end
end
