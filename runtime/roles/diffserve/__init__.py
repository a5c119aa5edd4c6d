"""DiffServe's roles: gRPC shells (threads, locks, RPC, the wall clock, files) over the cores in
runtime/cores/diffserve/."""
