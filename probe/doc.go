// Package probe holds ofmprobe's probing, one job per package:
//
//   - targets: target expressions, the lazy walk, the scattered scan order, shards and the resume filter;
//   - engine: budgets, pacing, pushback, the hosts in flight, the workers and the panic guard, and the Env each
//     step is handed; engine/datagram: the one UDP path of a scan;
//   - steps: the one registry of probe steps and the plan a scan derives from it, with one package per protocol
//     family: steps/tcp (connect), steps/udp (UDP ports), steps/nbt (NetBIOS node status and session), steps/smb
//     (SMB negotiate and the OFMLOG$ share), steps/rpc (the endpoint-mapper bind);
//   - exporter: `ofmprobe serve`, the Prometheus exporter, whose probes and sweeps run the same plan and engine;
//   - status: the one vocabulary of how a probe ended, and its classifier;
//   - netbios, smb, msrpc: the wire codecs, pure functions with fuzz tests (smb also holds the one wrapper around
//     go-smb2).
package probe
