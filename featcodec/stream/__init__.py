"""The stream: :mod:`.container` (the self-describing, checksummed, versioned byte
format: magic, header, sections) and :mod:`.rans` (the compiled rANS entropy coder's
bindings). docs/format.md specifies the bytes."""
