"""Clock-free role cores: each role's decisions and books as plain objects whose methods take
`now` (trace seconds) and their inputs and return what to do as data. No threads, locks, RPC,
files or reads of time: the gRPC roles call them on the wall clock, the virtual-clock engine
(`runtime/engine/`) on its own clock, so both run one decision code."""
