//! Cluster mode on NATS JetStream (`[cluster]`): the subjects Vigil uses and how patients map
//! to partitions. Only the partitioning is built so far (see docs/cluster.md); a
//! configuration with `[cluster]` is refused at start rather than run as a single node.
//!
//! | file | what |
//! | --- | --- |
//! | `partition.rs` | patient → partition (the same hash as nats-server's `partition()` mapping), subject names |

pub mod partition;
