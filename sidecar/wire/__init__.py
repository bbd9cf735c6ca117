"""S2's wire formats as pure, sans-IO code: JSON and protobuf mapping, SSE and s2s framing,
query parameters and names, and a serialized batch's records read as bytes (`records`). Bytes
in, values out; no sockets, no asyncio.

Used by the upstream client (to read S2), by the history cache (to index and slice the batches
it keeps) and by the emulator (to serve the same formats).
"""
