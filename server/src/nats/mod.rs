//! Cluster mode on NATS JetStream (`[cluster]`): many nodes, each partition of patients
//! evaluated by exactly one live node at a time, one replicated alert stream read alike
//! by every node. See docs/cluster.md.
//!
//! | file | what |
//! | --- | --- |
//! | `cluster.rs` | the connection, the readings and alert streams, storing accepted readings |
//! | `partition.rs` | patient → partition (the same hash as nats-server's `partition()` mapping), subject names |
//! | `catalog.rs` | rules, patients, silences and devices changed while the cluster runs: written by any node, applied on all |
//! | `holders.rs` | which node runs each notifier: a lease per notifier, taken by any node |
//! | `positions.rs` | where each notifier stands in the alert stream, so its next holder resumes there |
//! | `lease.rs` | one partition's lease in a key-value bucket, revision-fenced |
//! | `ownership.rs` | live nodes, which partitions this node should own, taking and giving up leases |
//! | `owner.rs` | one owned partition: takeover (fence, replay, adopt), judging readings, writing alert events |
//! | `mirror.rs` | every node's copy of the alert stream, which subscribers read |
//! | `snapshot.rs` | each partition's windows in an object store, so a takeover replays only recent readings |
//! | `wire.rs` | readings and alert events as they travel, and their headers |

pub mod bucket;
pub mod catalog;
pub mod cluster;
pub mod holders;
pub mod lease;
pub mod mirror;
pub mod owner;
pub mod ownership;
pub mod partition;
pub mod positions;
pub mod snapshot;
pub mod wire;
