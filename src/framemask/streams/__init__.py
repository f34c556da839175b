"""RTSP ingest and alignment: serve files over RTSP, record streams into object storage, compare and align."""
