//! Cluster mode on NATS JetStream (`[cluster]`): the subjects Vigil uses, how patients map
//! to partitions, and which node owns a partition. Only these are built so far (see
//! docs/cluster.md); a configuration with `[cluster]` is refused at start rather than run as
//! a single node.
//!
//! | file | what |
//! | --- | --- |
//! | `lease.rs` | which node evaluates each partition: leases in a key-value bucket, revision-fenced |
//! | `partition.rs` | patient → partition (the same hash as nats-server's `partition()` mapping), subject names |

pub mod lease;
pub mod partition;
