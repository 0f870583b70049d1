//! Key-value buckets the cluster keeps (catalog, positions, leases, nodes): opened where
//! they exist, created with their configuration where they do not.

use async_nats::jetstream;

/// Opens the key-value bucket `config.bucket`, creating it with `config` if it does not
/// exist yet; why not, if neither works.
pub async fn open_bucket(
    js: &jetstream::Context,
    config: jetstream::kv::Config,
) -> Result<jetstream::kv::Store, String> {
    match js.get_key_value(&config.bucket).await {
        Ok(store) => Ok(store),
        Err(missing) => js.create_key_value(config.clone()).await.map_err(|e| {
            format!(
                "bucket {}: not readable ({missing}), not created ({e})",
                config.bucket
            )
        }),
    }
}
